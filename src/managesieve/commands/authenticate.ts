/**
 * RFC 5804 §2.1 AUTHENTICATE with SASL PLAIN (RFC 4616; §2.1 makes it mandatory to implement), LOGIN (what older
 * clients send) and GSSAPI (RFC 4752, Kerberos single sign-on with service name "sieve", when auth.kerberos has a
 * readable keytab), with the initial response as the optional second argument. Continuations are server strings of
 * base64; the client answers with a string, "*" cancels. Only after STARTTLS unless mailbox.allowUnencrypted (the
 * seed's rule, as IMAP and POP3 apply it).
 */
import type { AuthResult } from '../../auth/authenticator.js';
import { SaslCancelled, type SaslConversation } from '../../auth/gssapi.js';
import { loginKey } from '../../directory/types.js';
import { sieveString } from '../response.js';
import type { ManageSieveSession } from '../session.js';
import { expectArgs, NON_AUTHENTICATED, SieveNo, stringArg, type ManageSieveCommand } from './types.js';

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function decode(text: string): Buffer {
  if (!BASE64.test(text)) throw new SieveNo('Invalid base64 in the SASL response');
  return Buffer.from(text, 'base64');
}

/** One continuation (RFC 5804 §2.1): the challenge as a string of base64, the client's response as a string line. */
async function challenge(s: ManageSieveSession, data: Buffer): Promise<Buffer> {
  s.write(Buffer.concat([sieveString(data.toString('base64')), Buffer.from('\r\n')]));
  const line = await s.nextLine();
  if (line === null) throw new SaslCancelled();
  if ('error' in line || line.tokens.length !== 1 || line.tokens[0]!.kind !== 'string') throw new SieveNo('Invalid SASL response: expected a string');
  const text = stringArg(line.tokens[0], 'SASL response');
  if (text === '*') throw new SaslCancelled();
  return decode(text);
}

async function credentials(s: ManageSieveSession, mech: string, initial: Buffer | undefined): Promise<[string, string]> {
  if (mech === 'PLAIN') {
    const data = initial ?? (await challenge(s, Buffer.alloc(0)));
    const parts = data.toString('utf8').split('\0');
    if (parts.length !== 3) throw new SieveNo('Malformed PLAIN response');
    const [authzid, authcid, password] = parts as [string, string, string];
    // Acting as another user is the master user's "john*admin" login, not a PLAIN authzid (as IMAP and POP3).
    if (authzid !== '' && loginKey(authzid) !== loginKey(authcid)) return [authcid, ''];
    return [authcid, password];
  }
  const user = initial ?? (await challenge(s, Buffer.from('Username:')));
  const password = await challenge(s, Buffer.from('Password:'));
  return [user.toString('utf8'), password.toString('utf8')];
}

export const authenticate: ManageSieveCommand = {
  name: 'AUTHENTICATE',
  states: NON_AUTHENTICATED,
  async run(s, args) {
    expectArgs(args, 1, 2);
    const mech = stringArg(args[0], 'mechanism').toUpperCase();
    const gss = mech === 'GSSAPI' && s.ctx.auth.gssapiAvailable?.() === true;
    if (mech !== 'PLAIN' && mech !== 'LOGIN' && !gss) throw new SieveNo('Unsupported authentication mechanism');
    if (!s.loginAllowed()) throw new SieveNo('Use STARTTLS before authenticating', 'ENCRYPT-NEEDED');
    const initial = args.length === 2 ? decode(stringArg(args[1], 'initial response')) : undefined;
    let login: string;
    let result: AuthResult;
    try {
      if (gss) {
        const conv: SaslConversation = { challenge: (data) => challenge(s, data) };
        const r = await s.ctx.auth.authenticateGssapi!('sieve', initial, conv, { client: s.client, protocol: 'managesieve' });
        if (r.status === 'cancelled') return s.no('Authentication cancelled');
        result = r;
        login = r.status === 'ok' ? r.user.login : '(gssapi)';
      } else {
        const [user, password] = await credentials(s, mech, initial);
        login = user;
        // An empty password (a refused PLAIN authzid too) is refused by the authenticator before AD, after its delay.
        result = await s.ctx.auth.authenticate(user, password, { client: s.client, protocol: 'managesieve' });
      }
    } catch (err) {
      if (err instanceof SaslCancelled) return s.no('Authentication cancelled');
      throw err;
    }
    if (result.status === 'ok') {
      s.loggedIn(result, mech);
      return s.ok('Logged in');
    }
    s.log.info({ user: login, client: s.client, protocol: 'managesieve', mechanism: mech, result: result.status }, `login ${login} failed`);
    // RFC 5804 §1.3 TRYLATER: AD unreachable is not a wrong password.
    if (result.status === 'tempfail') return s.no('Authentication service unavailable, try again later', 'TRYLATER');
    // Unknown user, wrong password, disabled account: one answer (authenticator.ts), after its delay.
    s.no('Authentication failed');
    s.loginFailed();
  },
};
