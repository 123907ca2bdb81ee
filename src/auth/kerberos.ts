/**
 * Password check by Kerberos (the `kerberos` package's checkPassword: an AS exchange for `service`). The KDC comes
 * from the system krb5.conf (or KRB5_CONFIG). The package documents that this check does not verify the KDC's
 * identity with a keytab; use it where the path to the DCs is trusted, or prefer ldap-bind over LDAPS.
 */
import kerberos from 'kerberos';
import { TempFailure } from '../lib/errors.js';
import type { PasswordCheck } from '../directory/types.js';

/** MIT krb5 messages that mean "the KDC could not be asked", as opposed to "the KDC said no". */
const UNREACHABLE = /cannot contact any kdc|cannot find kdc|unable to reach|timed out|connection refused|cannot resolve|network is unreachable|no route to host|configuration file does not specify default realm|cannot read realm/i;

export async function kerberosCheck(principal: string, password: string, service: string, realm: string): Promise<PasswordCheck> {
  if (password === '') return 'invalid';
  try {
    await kerberos.checkPassword(principal, password, service, realm);
    return 'ok';
  } catch (err) {
    const message = (err as Error)?.message ?? String(err);
    if (UNREACHABLE.test(message)) throw new TempFailure(`kerberos: ${message}`, { cause: err });
    return 'invalid';
  }
}
