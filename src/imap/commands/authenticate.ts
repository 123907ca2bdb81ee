/**
 * AUTHENTICATE (RFC 3501 §6.2.2) with PLAIN (RFC 4616), LOGIN and GSSAPI (RFC 4752, Kerberos single sign-on, when a
 * keytab is configured), and SASL-IR (RFC 4959) initial responses. A client answering "*" cancels the exchange (BAD).
 */
import { SaslCancelled } from '../../auth/gssapi.js';
import type { ImapSession } from '../connection.js';
import { astring, bad, expectArgs, no, type Completion, type ImapCommand } from '../command.js';
import { checkPassword, finishLogin } from './login.js';

async function response(session: ImapSession, challenge: string | Buffer): Promise<Buffer> {
  session.continuation(Buffer.from(challenge).toString('base64'));
  const line = await session.readLine();
  if (!line) throw bad('Connection closed');
  const text = line.toString('latin1').replace(/\r?\n$/, '');
  if (text === '*') throw new SaslCancelled();
  return decodeB64(text);
}

function decodeB64(text: string): Buffer {
  if (text === '=') return Buffer.alloc(0);
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) throw bad('Invalid base64');
  return Buffer.from(text, 'base64');
}

export const authenticate: ImapCommand = {
  names: ['AUTHENTICATE'],
  states: ['not-authenticated'],
  async handle(session, cmd) {
    try {
      return await exchange(session, cmd);
    } catch (err) {
      if (err instanceof SaslCancelled) throw bad('Authentication cancelled');
      throw err;
    }
  },
};

async function exchange(session: ImapSession, cmd: Parameters<ImapCommand['handle']>[1]): Promise<Completion> {
  expectArgs(cmd, 1, 2);
  const mech = astring(cmd.args[0], 'mechanism').toUpperCase();
  if (session.loginDisabled) throw no('Use STARTTLS first', 'PRIVACYREQUIRED');
  const initial = cmd.args[1] ? decodeB64(astring(cmd.args[1], 'initial response')) : undefined;
  if (mech === 'PLAIN') {
    const data = initial ?? (await response(session, ''));
    const parts = data.toString('utf8').split('\0');
    if (parts.length !== 3) throw bad('Invalid PLAIN response');
    const [authzid, authcid, password] = parts;
    // Authorisation as another user goes through the master-user syntax, not authzid.
    if (authzid && authzid.toLowerCase() !== authcid.toLowerCase()) throw no('Invalid credentials', 'AUTHENTICATIONFAILED');
    return checkPassword(session, authcid, password, cmd.tag);
  }
  if (mech === 'LOGIN') {
    const user = (initial ?? (await response(session, 'Username:'))).toString('utf8');
    const password = (await response(session, 'Password:')).toString('utf8');
    return checkPassword(session, user, password, cmd.tag);
  }
  if (mech === 'GSSAPI' && session.deps.auth.gssapiAvailable()) {
    if (session.deps.settings.get('mailbox.imap') === false) {
      session.loginFailed('(gssapi)', 'imap-disabled');
      throw no('IMAP access is disabled', 'CONTACTADMIN');
    }
    const conv = { challenge: (data: Buffer) => response(session, data) };
    const result = await session.deps.auth.authenticateGssapi('imap', initial, conv, { client: session.client, protocol: 'imap' });
    if (result.status === 'cancelled') throw bad('Authentication cancelled');
    return finishLogin(session, result.status === 'ok' ? result.user.login : '(gssapi)', result, cmd.tag);
  }
  throw no('Unsupported authentication mechanism', 'CANNOT');
}
