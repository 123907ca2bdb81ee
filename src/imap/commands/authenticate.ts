/**
 * AUTHENTICATE (RFC 3501 §6.2.2) with PLAIN (RFC 4616) and LOGIN, and SASL-IR (RFC 4959) initial responses.
 * A client answering "*" cancels the exchange (BAD).
 */
import type { ImapSession } from '../connection.js';
import { astring, bad, expectArgs, no, type ImapCommand } from '../command.js';
import { checkPassword } from './login.js';

async function response(session: ImapSession, challenge: string): Promise<Buffer> {
  session.continuation(Buffer.from(challenge).toString('base64'));
  const line = await session.readLine();
  if (!line) throw bad('Connection closed');
  const text = line.toString('latin1').replace(/\r?\n$/, '');
  if (text === '*') throw bad('Authentication cancelled');
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
      return checkPassword(session, authcid, password);
    }
    if (mech === 'LOGIN') {
      const user = (initial ?? (await response(session, 'Username:'))).toString('utf8');
      const password = (await response(session, 'Password:')).toString('utf8');
      return checkPassword(session, user, password);
    }
    throw no('Unsupported authentication mechanism', 'CANNOT');
  },
};
