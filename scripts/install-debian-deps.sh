#!/usr/bin/env bash
# Debian packages postern needs on a fresh machine. Run as root (CI does, from .ci/run).
#   build: libkrb5-dev (the `kerberos` npm package compiles against it), python3, make, g++
#   tests: samba (AD DC), ldap-utils, krb5-user; clamav-daemon, clamav (sigtool), spamd, spamassassin for the
#   filter tests; isync (mbsync), fetchmail and curl as real IMAP/POP3 clients; swaks, which `npm start` and the
#   README tell the user to send with; zip/unzip/p7zip for the attachment-filter fixtures; dovecot-imapd for the
#   Maildir interop test and the IMAP benchmark; chromium (headless) for the web admin tests; sieve-connect as the real
#   ManageSieve client, libgssapi-perl for its GSSAPI mechanism and libnss-wrapper to resolve the GSSAPI test's host
#   name to loopback for it; postgresql for the postgres state backend's tests (the harness runs its own initdb +
#   postgres in a temp dir; the package's cluster is not started)
set -euo pipefail
BUILD=(libkrb5-dev python3 make g++)
TEST=(samba samba-ad-provision samba-dsdb-modules samba-vfs-modules ldap-utils krb5-user openssl
      clamav-daemon clamav spamd spamassassin isync fetchmail swaks curl zip unzip p7zip-full dovecot-imapd chromium
      sieve-connect libgssapi-perl libnss-wrapper postgresql)
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
# Installing samba, clamav-daemon (and freshclam) or spamd would start their system daemons; the tests start their
# own, loopback-only. policy-rc.d exit 101 tells invoke-rc.d not to start anything (as test/harness/packages.ts does).
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\n# written by postern scripts/install-debian-deps.sh during apt-get install\nexit 101\n' > "$policy"
  chmod 755 "$policy"
  trap 'rm -f "$policy"' EXIT
fi
apt-get install -y -q --no-install-recommends "${want[@]}"
