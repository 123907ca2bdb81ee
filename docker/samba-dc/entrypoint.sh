#!/bin/sh
# Provisions the domain on the first start (the volumes keep it), creates the search account postern binds with
# and one demo mailbox, then runs samba in the foreground. What postern needs from here goes into /shared (a
# volume postern mounts read-only at /etc/postern/dc): the CA of the DC's LDAPS certificate and the password of
# the search account.
set -eu
: "${REALM:=CORP.EXAMPLE}" "${DOMAIN:=CORP}"
: "${ADMIN_PASSWORD:?set ADMIN_PASSWORD}" "${SVC_MAIL_PASSWORD:?set SVC_MAIL_PASSWORD}" "${DEMO_PASSWORD:?set DEMO_PASSWORD}"
: "${MAIL_DOMAIN:=example.com}"

if [ ! -f /var/lib/samba/private/sam.ldb ]; then
  rm -f /etc/samba/smb.conf
  # xattr_tdb: ACLs in a tdb file, not in security.* extended attributes (which need CAP_SYS_ADMIN in a container);
  # no DNS server: postern finds the DC by name on the compose network (test/harness/samba.ts does the same).
  samba-tool domain provision --realm="$REALM" --domain="$DOMAIN" --server-role=dc --dns-backend=NONE \
    --adminpass="$ADMIN_PASSWORD" --option="vfs objects = dfs_samba4 acl_xattr xattr_tdb"
  # The account postern searches with (directory.bindDN), and a user with a mailbox.
  samba-tool user create svc-mail "$SVC_MAIL_PASSWORD" --description="postern LDAP searches"
  samba-tool user setexpiry svc-mail --noexpiry
  samba-tool user create demo "$DEMO_PASSWORD" --mail-address="demo@$MAIL_DOMAIN" --given-name=Demo --surname=User
fi

samba -i -M single &
pid=$!
trap 'kill "$pid"' TERM INT
# Samba makes its self-signed LDAPS certificate on the first start; postern verifies the DC with its CA.
i=0
until [ -f /var/lib/samba/private/tls/ca.pem ]; do
  i=$((i + 1)); [ "$i" -le 120 ] || { echo "no LDAPS CA after 60 s" >&2; exit 1; }
  sleep 0.5
done
install -m 0644 /var/lib/samba/private/tls/ca.pem /shared/ca.pem
umask 077
printf '%s\n' "$SVC_MAIL_PASSWORD" > /shared/svc-mail.password.tmp
chmod 0644 /shared/svc-mail.password.tmp
mv /shared/svc-mail.password.tmp /shared/svc-mail.password
wait "$pid"
