#!/usr/bin/env bash
# Debian packages postern needs on a fresh machine. Run as root (CI does, from .ci/run).
#   build: libkrb5-dev (the `kerberos` npm package compiles against it), python3, make, g++
#   tests: samba (AD DC), ldap-utils, krb5-user; later tiers add clamav-daemon, spamd, dovecot for benchmarks
set -euo pipefail
BUILD=(libkrb5-dev python3 make g++)
TEST=(samba samba-ad-provision samba-dsdb-modules samba-vfs-modules ldap-utils krb5-user openssl)
want=()
for p in "${BUILD[@]}" "${TEST[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || want+=("$p")
done
if [ ${#want[@]} -eq 0 ]; then
  echo "install-debian-deps: everything is installed"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-debian-deps: missing Debian packages: ${want[*]} (run this script as root)" >&2
  exit 1
fi
echo "install-debian-deps: installing ${want[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${want[@]}"
