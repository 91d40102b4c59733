#!/usr/bin/env bash
# Build and install tallow on this machine (run as root from the source tree), or remove it.
#
#   ./install.sh [--start] [--prefix P] [--destdir D] [--no-deps] [--no-build]
#   ./install.sh --uninstall [--prefix P] [--destdir D]
#
# Installs: P/lib/tallow (the program: dist/src, the addon, production node_modules, shipped
# patterns, package.json), P/bin/tallow (launcher), P/share/man/man{5,8} (man pages),
# /etc/systemd/system/tallow.service, /usr/share/bash-completion/completions/tallow,
# /usr/share/zsh/vendor-completions/_tallow,
# /etc/logrotate.d/tallow (for the log file without systemd), /etc/tallow.conf.d/, and
# /etc/tallow.conf only when absent (an administrator's configuration is never overwritten). P defaults to /usr/local. D (DESTDIR) stages everything
# under another root, for packaging; nothing is started then.
# --start: under systemd, `systemctl daemon-reload && systemctl enable tallow && systemctl restart
# tallow`; without systemd, starts the daemon in the background (log: /var/log/tallow.log).
# --uninstall removes what was installed; /etc/tallow.conf, /etc/tallow.conf.d/, /etc/tallow/ and
# /var/lib/tallow stay.
set -euo pipefail

prefix=/usr/local
destdir=
start=
uninstall=
deps=1
build=1

usage() {
  sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
}

while [ $# -gt 0 ]; do
  case "$1" in
    --start) start=1 ;;
    --uninstall) uninstall=1 ;;
    --no-deps) deps= ;;
    --no-build) build= ;;
    --prefix) [ $# -ge 2 ] || { echo "install.sh: --prefix needs a directory" >&2; exit 64; }; prefix=$2; shift ;;
    --prefix=*) prefix=${1#*=} ;;
    --destdir) [ $# -ge 2 ] || { echo "install.sh: --destdir needs a directory" >&2; exit 64; }; destdir=$2; shift ;;
    --destdir=*) destdir=${1#*=} ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install.sh: unknown option $1 (see ./install.sh --help)" >&2; exit 64 ;;
  esac
  shift
done

case "$prefix" in /*) ;; *) echo "install.sh: --prefix must be an absolute path, not '$prefix'" >&2; exit 64 ;; esac
prefix=${prefix%/}
[ -n "$destdir" ] && destdir=$(mkdir -p "$destdir" && cd "$destdir" && pwd)
if [ -n "$destdir" ] && [ -n "$start" ]; then
  echo "install.sh: --start makes no sense with --destdir (nothing is installed on this system)" >&2
  exit 64
fi
if [ -z "$destdir" ] && [ "$(id -u)" != 0 ]; then
  echo "install.sh: run as root (or give --destdir to stage the files elsewhere)" >&2
  exit 77
fi

src=$(cd "$(dirname "$0")" && pwd)
lib=$destdir$prefix/lib/tallow
bin=$destdir$prefix/bin/tallow
man=$destdir$prefix/share/man
unit=$destdir/etc/systemd/system/tallow.service
conf=$destdir/etc/tallow.conf
completion=$destdir/usr/share/bash-completion/completions/tallow
zsh_completion=$destdir/usr/share/zsh/vendor-completions/_tallow
logrotate=$destdir/etc/logrotate.d/tallow
pidfile=/run/tallow.pid

under_systemd() {
  [ -z "$destdir" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null
}

# The background daemon started by --start without systemd: ours if its command line is our launcher's.
stop_background() {
  [ -f "$pidfile" ] || return 0
  local pid
  pid=$(cat "$pidfile" 2>/dev/null || true)
  if [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q "$prefix/lib/tallow/dist/src/cli.js"; then
    echo "stopping the background tallow (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
  fi
  rm -f "$pidfile"
}

if [ -n "$uninstall" ]; then
  if under_systemd && systemctl list-unit-files tallow.service >/dev/null 2>&1; then
    systemctl disable --now tallow.service 2>/dev/null || true
  fi
  [ -z "$destdir" ] && stop_background
  rm -rf -- "$lib"
  rm -f -- "$bin" "$unit" "$man/man8/tallow.8" "$man/man5/tallow.conf.5" "$man/man5/tallow.patterns.5" "$completion" "$zsh_completion" "$logrotate"
  under_systemd && systemctl daemon-reload || true
  echo "tallow removed from $destdir$prefix (kept: /etc/tallow.conf, /etc/tallow.conf.d/, /etc/tallow/, /var/lib/tallow)"
  exit 0
fi

# Every step names itself; a step that fails says which and what it exited with, and removes the
# half-built new tree: the previous install stays as it was until the final swap.
step='starting'
say() {
  step=$1
  echo "== $1"
}
cleanup_failed() {
  local rc=$?
  trap - ERR
  echo "install.sh: failed while $step (exit $rc); the previous install, if any, is unchanged" >&2
  rm -rf -- "${lib:?}.new" "$bin.tmp" "$unit.tmp"
  exit "$rc"
}
trap cleanup_failed ERR
set -E

cd "$src"
if [ -n "$deps" ]; then
  say "installing build and run-time packages (scripts/deps.sh)"
  bash scripts/deps.sh
fi
node=$(command -v node || true)
[ -n "$node" ] || { echo "install.sh: node is not installed (scripts/deps.sh installs it)" >&2; exit 69; }
# npm lists the production dependencies to copy, also with --no-build.
command -v npm >/dev/null || { echo "install.sh: npm is not installed (scripts/deps.sh installs it with node)" >&2; exit 69; }
if [ -n "$build" ]; then
  say "building (npm ci, addon, TypeScript)"
  # Native modules (the addon, better-sqlite3 when no prebuilt binary can be fetched) are built
  # against this Node's own headers, never downloaded ones.
  export npm_config_nodedir="${npm_config_nodedir:-$(node -p "require('path').resolve(process.execPath, '../..')")}"
  npm ci --no-audit --no-fund   # also builds the addon (package.json "install" script)
  npm run build:ts
fi
for f in dist/src/cli.js build/Release/tallow.node patterns/sshd.json tallow.conf tallow.service completion/tallow.bash completion/_tallow tallow.logrotate; do
  [ -e "$f" ] || { echo "install.sh: $src/$f is missing: build first (drop --no-build)" >&2; exit 1; }
done

say "installing into $destdir$prefix"
rm -rf -- "$lib.new"
mkdir -p "$lib.new/build/Release" "$lib.new/node_modules"
cp -a dist/src "$lib.new/dist-src.tmp"
mkdir -p "$lib.new/dist" && mv "$lib.new/dist-src.tmp" "$lib.new/dist/src"
find "$lib.new/dist" -name '*.map' -delete
cp build/Release/tallow.node "$lib.new/build/Release/"
cp -a patterns "$lib.new/patterns"
cp package.json "$lib.new/"
# Production dependencies only, as npm resolved them (no network needed). Listed first, so an npm
# failure stops here with its own words, not as a silent empty node_modules.
step='listing the production dependencies (npm ls --omit=dev)'
deplist=$(npm ls --omit=dev --parseable --all 2>"$lib.new/npm-ls.err") || {
  echo "install.sh: npm ls failed: $(head -c 2000 "$lib.new/npm-ls.err")" >&2
  false
}
rm -f -- "$lib.new/npm-ls.err"
step="copying the program into $lib.new"
printf '%s\n' "$deplist" | while read -r dir; do
  case "$dir" in "$src"/node_modules/*) ;; *) continue ;; esac
  rel=${dir#"$src"/}
  # A nested module came already with its parent's directory: copying it again would nest it twice.
  [ -e "$lib.new/$rel" ] && continue
  mkdir -p "$lib.new/$(dirname "$rel")"
  cp -a "$dir" "$lib.new/$rel"
done
for d in $("$node" -p "Object.keys(require('./package.json').dependencies || {}).join(' ')"); do
  [ -d "$lib.new/node_modules/$d" ] || { echo "install.sh: $d is missing from the copied dependencies (npm ls listed none?)" >&2; false; }
done
step="replacing $lib"
# Swap in the new tree at once: a running daemon keeps its open files, a new start sees all new.
rm -rf -- "$lib.old"
[ -d "$lib" ] && mv "$lib" "$lib.old"
mv "$lib.new" "$lib"
rm -rf -- "$lib.old"
chmod -R u=rwX,go=rX "$lib"

step="installing the launcher, man pages, unit and configuration"
mkdir -p "$(dirname "$bin")"
cat > "$bin.tmp" <<EOF
#!/bin/sh
# tallow launcher (install.sh): the program lives in $prefix/lib/tallow.
exec $node $prefix/lib/tallow/dist/src/cli.js "\$@"
EOF
chmod 755 "$bin.tmp" && mv "$bin.tmp" "$bin"

mkdir -p "$man/man8" "$man/man5"
install -m 644 man/tallow.8 "$man/man8/tallow.8"
install -m 644 man/tallow.conf.5 "$man/man5/tallow.conf.5"
install -m 644 man/tallow.patterns.5 "$man/man5/tallow.patterns.5"

# Always, also under systemd: with no /var/log/tallow.log the logrotate snippet does nothing
# (missingok), and one file list serves every install (and the package).
install -D -m 644 completion/tallow.bash "$completion"
install -D -m 644 completion/_tallow "$zsh_completion"
install -D -m 644 tallow.logrotate "$logrotate"

mkdir -p "$(dirname "$unit")"
sed "s|^ExecStart=.*|ExecStart=$prefix/bin/tallow|" tallow.service > "$unit.tmp" && chmod 644 "$unit.tmp" && mv "$unit.tmp" "$unit"

mkdir -p "$destdir/etc/tallow"
# Drop-ins (tallow.conf(5)); `tallow allow add` writes 50-tallow-allow.conf here.
mkdir -p "$destdir/etc/tallow.conf.d" && chmod 755 "$destdir/etc/tallow.conf.d"
if [ -e "$conf" ]; then
  echo "kept the existing $conf (the shipped one, with every key commented, is $src/tallow.conf)"
else
  install -m 644 tallow.conf "$conf"
fi

echo "installed: $bin, $lib, $unit, man pages in $man, $completion, $zsh_completion, $logrotate"

[ -n "$start" ] || exit 0

if under_systemd; then
  say "starting tallow.service"
  systemctl daemon-reload
  systemctl enable tallow.service
  systemctl restart tallow.service
  systemctl --no-pager --lines=0 status tallow.service || true
  echo "tallow is running; its log: journalctl -u tallow (bans: journalctl -t tallow TALLOW_ACTION=ban)"
else
  stop_background
  log=/var/log/tallow.log
  echo "== systemd is not running here: starting tallow in the background with /etc/tallow.conf"
  mkdir -p /var/lib/tallow /run/tallow && chmod 700 /var/lib/tallow /run/tallow
  # First line of this start's output (the log is appended to; absent on a fresh machine).
  from=1
  if [ -f "$log" ]; then from=$(( $(wc -l < "$log") + 1 )); fi
  nohup "$prefix/bin/tallow" >>"$log" 2>&1 </dev/null &
  pid=$!
  echo "$pid" > "$pidfile"
  for _ in $(seq 100); do
    if ! [ -d "/proc/$pid" ]; then
      echo "install.sh: tallow exited at start; see $log:" >&2
      tail -n 5 "$log" >&2
      rm -f "$pidfile"
      exit 1
    fi
    tail -n "+$from" "$log" 2>/dev/null | grep -q "journal: .* starting at" && break
    sleep 0.1
  done
  echo "tallow is running in the background (pid $pid, in $pidfile); its log: $log"
  echo "stop it with: kill \$(cat $pidfile)"
fi
