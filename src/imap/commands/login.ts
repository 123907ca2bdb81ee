/**
 * LOGIN (RFC 3501 §6.2.3), and the password check AUTHENTICATE shares. Before TLS it is refused (LOGINDISABLED)
 * unless `mailbox.allowUnencrypted`; wrong password and unknown user answer alike; AD unreachable is UNAVAILABLE.
 */
import type { ImapSession } from '../connection.js';
import { astring, expectArgs, no, type Completion, type ImapCommand } from '../command.js';

export async function checkPassword(session: ImapSession, login: string, password: string): Promise<Completion> {
  if (session.deps.settings.get('mailbox.imap') === false) {
    session.loginFailed(login, 'imap-disabled');
    throw no('IMAP access is disabled', 'CONTACTADMIN');
  }
  const result = await session.deps.auth.authenticate(login, password, { client: session.client, protocol: 'imap' });
  if (result.status === 'ok') {
    if (!session.claimUserSlot(result.user)) {
      session.loginFailed(login, 'too-many-connections');
      throw no('Too many connections for this user', 'LIMIT');
    }
    session.loggedIn(result.user, result.master);
    await session.loadAccess();
    return { code: `CAPABILITY ${session.capabilities().join(' ')}`, text: 'Logged in' };
  }
  session.loginFailed(login, result.status);
  // RFC 5530 response codes: the client learns "try later" apart from "wrong credentials", and nothing more.
  if (result.status === 'tempfail') throw no('Authentication temporarily unavailable', 'UNAVAILABLE');
  throw no('Invalid credentials', 'AUTHENTICATIONFAILED');
}

export const login: ImapCommand = {
  names: ['LOGIN'],
  states: ['not-authenticated'],
  async handle(session, cmd) {
    expectArgs(cmd, 2);
    if (session.loginDisabled) throw no('Use STARTTLS first', 'PRIVACYREQUIRED');
    return checkPassword(session, astring(cmd.args[0], 'user name'), astring(cmd.args[1], 'password'));
  },
};
