import { SaslCancelled, type SaslConversation } from '../../auth/gssapi.js';
import { loginKey } from '../../directory/types.js';
import { finishLogin, login } from '../login.js';
import type { Pop3Session } from '../session.js';
import { AUTHORIZATION, NEED_TLS, type Pop3Command } from './types.js';

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

class BadBase64 extends Error {}

/**
 * RFC 5034 §4 continuations for a multi-step mechanism: "+ " and the base64 challenge; the client's line is base64,
 * "*" cancels. A closed connection ends the exchange as a cancel does (nothing is answered).
 */
function conversation(s: Pop3Session): SaslConversation {
  return {
    async challenge(data) {
      s.send(`+ ${data.toString('base64')}`);
      const line = await s.nextLine();
      if (line === null) throw new SaslCancelled();
      const text = line.trim();
      if (text === '*') throw new SaslCancelled();
      if (!BASE64.test(text)) throw new BadBase64();
      return Buffer.from(text, 'base64');
    },
  };
}

async function gssapi(s: Pop3Session, initial: string | undefined): Promise<void> {
  if (initial !== undefined && initial !== '=' && !BASE64.test(initial)) return s.err('invalid base64 in the SASL response');
  const first = initial === undefined || initial === '=' ? undefined : Buffer.from(initial, 'base64');
  if (!s.ctx.settings.get('mailbox.pop3')) {
    s.log.info({ client: s.client, protocol: 'pop3', mechanism: 'GSSAPI', result: 'pop3-disabled' }, 'GSSAPI login refused: POP3 is disabled');
    return s.err('[SYS/PERM] POP3 access is disabled on this server');
  }
  let result;
  try {
    result = await s.ctx.auth.authenticateGssapi!('pop', first, conversation(s), { client: s.client, protocol: 'pop3' });
  } catch (err) {
    if (err instanceof BadBase64) return s.err('invalid base64 in the SASL response');
    throw err;
  }
  if (result.status === 'cancelled') return s.err('authentication cancelled');
  await finishLogin(s, result.status === 'ok' ? result.user.login : '(gssapi)', result, 'GSSAPI');
}

/**
 * RFC 5034 AUTH with SASL PLAIN (RFC 4616) and GSSAPI (RFC 4752, Kerberos single sign-on, when a keytab is
 * configured), with the initial response on the command line or after a "+ " continuation. "AUTH" alone lists the
 * mechanisms, as older clients expect.
 */
export const auth: Pop3Command = {
  name: 'AUTH',
  states: AUTHORIZATION,
  async run(s, args) {
    const [mechanism = '', initial, ...extra] = args.split(' ').filter((a) => a !== '');
    if (mechanism === '') {
      if (!s.loginAllowed()) return s.err(NEED_TLS);
      s.send('+OK SASL mechanisms follow');
      s.send('PLAIN');
      if (s.ctx.auth.gssapiAvailable?.() === true) s.send('GSSAPI');
      s.send('.');
      return;
    }
    const mech = mechanism.toUpperCase();
    const gss = mech === 'GSSAPI' && s.ctx.auth.gssapiAvailable?.() === true;
    if (mech !== 'PLAIN' && !gss) return s.err('unsupported authentication mechanism');
    if (!s.loginAllowed()) return s.err(NEED_TLS);
    if (extra.length) return s.err('too many arguments');
    if (gss) return gssapi(s, initial);
    let response = initial;
    if (response === undefined) {
      s.send('+ ');
      const line = await s.nextLine();
      if (line === null) return;
      response = line.trim();
    }
    // RFC 5034 §4: "*" cancels; "=" is an empty initial response.
    if (response === '*') return s.err('authentication cancelled');
    if (response === '=') response = '';
    if (!BASE64.test(response)) return s.err('invalid base64 in the SASL response');
    const parts = Buffer.from(response, 'base64').toString('utf8').split('\0');
    if (parts.length !== 3) return s.err('malformed PLAIN response');
    const [authzid, authcid, password] = parts as [string, string, string];
    // Acting as another user is the master user's "john*admin" login, not a PLAIN authzid.
    if (authzid !== '' && loginKey(authzid) !== loginKey(authcid)) {
      s.err('[AUTH] authorization identity not allowed');
      return s.loginFailed();
    }
    await login(s, authcid, password, 'PLAIN');
  },
};
