#!/usr/bin/env bash
# Build tallow_VERSION_ARCH.deb from this source tree, already built (npm ci && npm run build).
#
#   scripts/build-deb.sh [--out DIR]      (default DIR: the source tree; needs no root)
#
# One list of installed files: install.sh stages them (--prefix /usr --destdir), and this script
# only moves them to Debian's places: the launcher to /usr/sbin, units from /etc/systemd/system to
# /lib/systemd/system, man pages gzipped. Every file install.sh puts under /etc is a conffile.
# debian/ holds the rest: changelog (the version), maintainer scripts, lintian overrides.
set -euo pipefail

out=
while [ $# -gt 0 ]; do
  case "$1" in
    --out) [ $# -ge 2 ] || { echo "build-deb.sh: --out needs a directory" >&2; exit 64; }; out=$2; shift ;;
    --out=*) out=${1#*=} ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-deb.sh: unknown option $1 (see --help)" >&2; exit 64 ;;
  esac
  shift
done

src=$(cd "$(dirname "$0")/.." && pwd)
cd "$src"
out=$(mkdir -p "${out:-$src}" && cd "${out:-$src}" && pwd)
for t in dpkg-deb dpkg-shlibdeps strip gzip node npm; do
  command -v "$t" >/dev/null || { echo "build-deb.sh: $t is not installed (apt-get install dpkg-dev binutils nodejs npm)" >&2; exit 69; }
done

# The version: debian/changelog's first entry, whose upstream part must be package.json's.
head=$(head -n 1 debian/changelog)
version=$(printf '%s\n' "$head" | sed -n 's/^tallow (\([^)]*\)).*/\1/p')
upstream=$(node -p "require('./package.json').version")
[ -n "$version" ] || { echo "build-deb.sh: debian/changelog:1: expected 'tallow (VERSION) ...', got '$head'" >&2; exit 65; }
[ "${version%-*}" = "$upstream" ] || {
  echo "build-deb.sh: debian/changelog:1: version $version does not match package.json's $upstream (add a changelog entry)" >&2
  exit 65
}
maintainer=$(sed -n 's/^ -- \(.*>\)  .*/\1/p' debian/changelog | head -n 1)
arch=$(dpkg --print-architecture)
deb="$out/tallow_${version}_${arch}.deb"

work=$(mktemp -d "${TMPDIR:-/tmp}/tallow-deb.XXXXXX")
trap 'rm -rf -- "$work"' EXIT
root=$work/root

echo "== staging with install.sh"
bash ./install.sh --no-deps --no-build --prefix /usr --destdir "$root" >"$work/install.log" 2>&1 || {
  cat "$work/install.log" >&2
  echo "build-deb.sh: install.sh failed (above)" >&2
  exit 1
}

echo "== laying out for Debian"
# Launcher: /usr/sbin (the control socket is root's), Debian's node by its fixed path.
mkdir -p "$root/usr/sbin"
rm -f -- "$root/usr/bin/tallow"
rmdir --ignore-fail-on-non-empty "$root/usr/bin"
cat > "$root/usr/sbin/tallow" <<'EOF'
#!/bin/sh
# tallow launcher (Debian package): the program lives in /usr/lib/tallow.
exec /usr/bin/node /usr/lib/tallow/dist/src/cli.js "$@"
EOF
chmod 755 "$root/usr/sbin/tallow"
# Units belong to the package in /lib/systemd/system; /etc/systemd/system is the administrator's.
if [ -d "$root/etc/systemd/system" ]; then
  mkdir -p "$root/lib/systemd/system"
  for u in "$root"/etc/systemd/system/*; do
    sed -e 's|^ExecStart=/usr/bin/tallow|ExecStart=/usr/sbin/tallow|' \
      -e 's|^# See tallow(8). Installed by install.sh.*|# See tallow(8). Installed by the Debian package tallow.|' "$u" > "$root/lib/systemd/system/$(basename "$u")"
    chmod 644 "$root/lib/systemd/system/$(basename "$u")"
  done
  rm -rf -- "$root/etc/systemd"
fi
grep -q '^ExecStart=/usr/sbin/tallow$' "$root/lib/systemd/system/tallow.service" || {
  echo "build-deb.sh: tallow.service: ExecStart= is not /usr/sbin/tallow after the rewrite" >&2
  exit 1
}
find "$root/usr/share/man" -type f ! -name '*.gz' -exec gzip -9n {} +

# Native modules: only the loadable .node files run; their sources and build intermediates
# (better-sqlite3's sqlite amalgamation, object files, a test extension) are not shipped.
lib=$root/usr/lib/tallow
bsq=$lib/node_modules/better-sqlite3
if [ -d "$bsq" ]; then
  rm -rf -- "$bsq/deps" "$bsq/src" "$bsq/binding.gyp" "$bsq/build/Release/obj.target" "$bsq/build/Release/.deps" \
    "$bsq/build/Release/test_extension.node" "$bsq/build/deps"
  find "$bsq/build" -maxdepth 1 -type f -delete
  find "$bsq/build/Release" -mindepth 1 ! -name '*.node' -exec rm -rf -- {} +
fi
# What npm ships that a running program never reads (linters' and npm's dotfiles, READMEs,
# changelogs, tests, TypeScript sources and typings, source maps); each module's license file
# stays beside it.
find "$lib/node_modules" -depth \( -name '.*' -o -iname 'readme*' -o -iname 'changelog*' -o -iname 'history.md' \
  -o \( -type f \( -name '*.ts' -o -name '*.mts' -o -name '*.cts' -o -name '*.map' \) \) \
  -o \( -type d \( -name test -o -name tests -o -name example -o -name examples -o -name .github \) \) \) -exec rm -rf -- {} +
find "$lib/node_modules" -mindepth 1 -depth -type d -empty -delete
# Executable exactly when it is a script (npm keeps whatever modes the authors' tarballs had).
find "$lib" -type f ! -name '*.node' -print0 | while IFS= read -r -d '' f; do
  if [ "$(head -c 2 "$f")" = '#!' ]; then chmod 755 "$f"; else chmod 644 "$f"; fi
done
mapfile -t elves < <(find "$root" -type f -name '*.node')
for f in "${elves[@]}"; do
  strip --strip-unneeded --remove-section=.comment --remove-section=.note "$f"
  chmod 644 "$f"
done

# State (records, bans, history) is root's alone, as the unit's StateDirectoryMode=0700 says.
mkdir -p "$root/var/lib/tallow" && chmod 700 "$root/var/lib/tallow"

doc=$root/usr/share/doc/tallow
mkdir -p "$doc" "$root/usr/share/lintian/overrides"
node scripts/deb-copyright.js "$lib" > "$doc/copyright"
gzip -9nc debian/changelog > "$doc/changelog.Debian.gz"
install -m 644 debian/tallow.lintian-overrides "$root/usr/share/lintian/overrides/tallow"

echo "== control files"
mkdir -p "$root/DEBIAN"
# Shared-library dependencies of the addons, as dpkg-shlibdeps reads them (it wants a debian/control).
mkdir -p "$work/shlibs/debian"
printf 'Source: tallow\n\nPackage: tallow\nArchitecture: any\n' > "$work/shlibs/debian/control"
shlibs=$(cd "$work/shlibs" && dpkg-shlibdeps -O "${elves[@]}" 2>"$work/shlibs.err" | sed -n 's/^shlibs:Depends=//p') || true
[ -n "$shlibs" ] || { cat "$work/shlibs.err" >&2; echo "build-deb.sh: dpkg-shlibdeps found no dependencies for ${elves[*]}" >&2; exit 1; }
# A working firewall is {ipset and iptables}, {nftables} or {firewalld} (backend=auto picks one);
# Depends has no "(a and b) | c", so it is written as two clauses: (nft|fwd|ipset), (nft|fwd|iptables).
depends="nodejs (>= 20), $shlibs, nftables | firewalld | ipset, nftables | firewalld | iptables"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat > "$root/DEBIAN/control" <<EOF
Package: tallow
Version: $version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $size
Depends: $depends
Suggests: openssh-server
Section: net
Priority: optional
Description: ban SSH brute-force attackers from the journal in the kernel firewall
 tallow reads sshd's authentication failures (and other services' with
 pattern files) straight from the systemd journal, scores the addresses they
 come from and bans them in the kernel firewall: ipset and iptables,
 nftables or firewalld. A re-implementation of clearlinux's tallow on Node.js.
 .
 The package enables and starts tallow.service; its configuration is
 /etc/tallow.conf, administrators' patterns go in /etc/tallow.
EOF
(cd "$root" && find etc -type f | sort | sed 's|^|/|') > "$root/DEBIAN/conffiles"
[ -s "$root/DEBIAN/conffiles" ] || rm -f "$root/DEBIAN/conffiles"
for s in postinst prerm postrm; do install -m 755 "debian/$s" "$root/DEBIAN/$s"; done
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) > "$root/DEBIAN/md5sums"
chmod 644 "$root/DEBIAN/control" "$root/DEBIAN/md5sums" "$root"/DEBIAN/conffiles 2>/dev/null || true
find "$root" -type d -exec chmod g-s {} +

echo "== building $deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "built $deb"
