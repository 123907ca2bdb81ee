/** Shared by PASS and AUTH PLAIN: policy checks, the authenticator, then the TRANSACTION state. */
import type { AuthResult } from '../auth/authenticator.js';
import type { Pop3Session } from './session.js';

export async function login(session: Pop3Session, user: string, password: string, mechanism: string): Promise<void> {
  const ctx = session.ctx;
  if (!ctx.settings.get('mailbox.pop3')) {
    session.log.info({ user, client: session.client, protocol: 'pop3', result: 'pop3-disabled' }, `login ${user} refused: POP3 is disabled`);
    session.err('[SYS/PERM] POP3 access is disabled on this server');
    return;
  }
  const result = await ctx.auth.authenticate(user, password, { client: session.client, protocol: 'pop3' });
  return finishLogin(session, user, result, mechanism);
}

/** What follows the check of a password or of a Kerberos ticket (AUTH GSSAPI): the TRANSACTION state, or -ERR. */
export async function finishLogin(session: Pop3Session, user: string, result: AuthResult, mechanism: string): Promise<void> {
  if (result.status === 'ok') return session.enterTransaction(result, mechanism);
  session.log.info({ user, client: session.client, protocol: 'pop3', mechanism, result: result.status }, `login ${user} failed`);
  if (result.status === 'tempfail') {
    session.err('[SYS/TEMP] authentication service unavailable, try again later');
    return;
  }
  // Unknown user, wrong password, disabled account: one answer (authenticator.ts), after its delay.
  session.err('[AUTH] authentication failed');
  session.loginFailed();
}
