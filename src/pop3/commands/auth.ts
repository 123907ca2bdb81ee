import { loginKey } from '../../directory/types.js';
import { login } from '../login.js';
import { AUTHORIZATION, NEED_TLS, type Pop3Command } from './types.js';

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * RFC 5034 AUTH with SASL PLAIN (RFC 4616), with the initial response on the command line or after a "+ "
 * continuation. "AUTH" alone lists the mechanisms, as older clients expect.
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
      s.send('.');
      return;
    }
    if (mechanism.toUpperCase() !== 'PLAIN') return s.err('unsupported authentication mechanism');
    if (!s.loginAllowed()) return s.err(NEED_TLS);
    if (extra.length) return s.err('too many arguments');
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
