#!/usr/bin/env bash
# Debian/Ubuntu packages needed to build tallow and to run its whole test suite.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
pkgs=(
  # build
  g++ make python3 pkg-config libsystemd-dev nodejs npm
  # journal tests: journald started by hand, journal files written from export format
  systemd systemd-journal-remote util-linux procps
  # end-to-end tests: a real sshd attacked by a real client
  openssh-server openssh-client sshpass iproute2
  # firewall backends, proven in network namespaces
  ipset iptables nftables firewalld dbus
  # log rotation of the no-systemd log file (test/real/logrotate)
  logrotate
  # zsh completion, run by zsh's own completion system (test/unit/completion-zsh)
  zsh
  # man page lint
  mandoc
  # the Debian package: dpkg-shlibdeps (dpkg-dev), strip (binutils), lintian; the on-demand
  # boot test (test/deb): debootstrap and systemd-nspawn (systemd-container)
  dpkg-dev binutils lintian debootstrap systemd-container
  # metrics: promtool (from prometheus) checks the exposition format; curl reads the endpoint
  prometheus curl
  # history: better-sqlite3 is compiled from source by npm ci (g++, make, python3 above);
  # PostgreSQL's server binaries (initdb, pg_ctl, psql) for a test cluster of its own
  postgresql
  # report: the HTML report rendered in headless Chromium (no request, figures as the text's)
  chromium
  # rules: a second real service (nginx with basic auth, htpasswd made with openssl passwd)
  nginx openssl
)
missing=()
for p in "${pkgs[@]}"; do
  # node/npm may come from elsewhere (nodesource, nvm): only install them if absent.
  if [ "$p" = nodejs ] && command -v node >/dev/null; then continue; fi
  if [ "$p" = npm ] && command -v npm >/dev/null; then continue; fi
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
