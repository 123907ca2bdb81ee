/**
 * LOGIN (RFC 3501 §6.2.3), and the password check AUTHENTICATE shares. Before TLS it is refused (LOGINDISABLED)
 * unless `mailbox.allowUnencrypted`; wrong password and unknown user answer alike; AD unreachable is UNAVAILABLE.
 * A user whose primary address is on a domain with an IMAP referral is referred there (RFC 2221 §4.1).
 */
import type { AuthResult } from '../../auth/authenticator.js';
import type { UserEntry } from '../../directory/types.js';
import type { ImapSession } from '../connection.js';
import { astring, expectArgs, no, type Completion, type ImapCommand } from '../command.js';

/** `tag`: the command's, when the login may move to another worker (imap.workers) that answers it. */
export async function checkPassword(session: ImapSession, login: string, password: string, tag?: string): Promise<Completion> {
  if (session.deps.settings.get('mailbox.imap') === false) {
    session.loginFailed(login, 'imap-disabled');
    throw no('IMAP access is disabled', 'CONTACTADMIN');
  }
  const result = await session.deps.auth.authenticate(login, password, { client: session.client, protocol: 'imap' });
  return finishLogin(session, login, result, tag);
}

/** What follows the check of a password or a Kerberos ticket (AUTHENTICATE GSSAPI): referral, limits, the state. */
export async function finishLogin(session: ImapSession, login: string, result: AuthResult, tag?: string): Promise<Completion> {
  if (result.status === 'ok') {
    // RFC 2221 §4.1: a NO with a REFERRAL code, the session stays unauthenticated. Only after the password is
    // verified, so the public listener tells a guesser nothing about who exists or where their mailbox is.
    const referral = referralFor(session, login, result.user);
    if (referral) {
      session.loginFailed(login, 'referred');
      throw no('Your mailbox is on another server', `REFERRAL ${referral}`);
    }
    // imap.workers: the mailbox's home worker completes the login (ImapSession.handOff).
    if (tag !== undefined && session.handOff(tag, result.user, result.master)) return { sent: true };
    return completeLogin(session, result.user, result.master);
  }
  session.loginFailed(login, result.status);
  // RFC 5530 response codes: the client learns "try later" apart from "wrong credentials", and nothing more.
  if (result.status === 'tempfail') throw no('Authentication temporarily unavailable', 'UNAVAILABLE');
  throw no('Invalid credentials', 'AUTHENTICATIONFAILED');
}

/** The login of a verified user: the per-user limit, the authenticated state, the shared folders, the answer. */
export async function completeLogin(session: ImapSession, user: UserEntry, master?: UserEntry): Promise<Completion> {
  if (!session.claimUserSlot(user)) {
    session.loginFailed(user.login, 'too-many-connections');
    throw no('Too many connections for this user', 'LIMIT');
  }
  session.loggedIn(user, master);
  await session.loadAccess();
  return { code: `CAPABILITY ${session.capabilities().join(' ')}`, text: 'Logged in' };
}

/**
 * `imap://<login>;AUTH=*@host[:port]/` (RFC 5092 §3, RFC 2221 §4.1) when the user's primary address is on a domain
 * whose mailboxes are on another IMAP server: the login as the client typed it, so it logs in there the same way.
 */
export function referralFor(session: ImapSession, login: string, user: UserEntry): string | null {
  const address = user.primaryAddress;
  if (!address || !session.deps.imapReferral) return null;
  const server = session.deps.imapReferral(address.slice(address.lastIndexOf('@') + 1));
  if (!server) return null;
  // RFC 5092 enc-user is achar: encodeURIComponent leaves only unreserved and "!'()*", all of them achar.
  return server.replace(/^imap:\/\//i, `imap://${encodeURIComponent(login)};AUTH=*@`);
}

export const login: ImapCommand = {
  names: ['LOGIN'],
  states: ['not-authenticated'],
  async handle(session, cmd) {
    expectArgs(cmd, 2);
    if (session.loginDisabled) throw no('Use STARTTLS first', 'PRIVACYREQUIRED');
    return checkPassword(session, astring(cmd.args[0], 'user name'), astring(cmd.args[1], 'password'), cmd.tag);
  },
};
