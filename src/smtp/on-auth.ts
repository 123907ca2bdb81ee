import type { SMTPServerAuthentication, SMTPServerAuthenticationResponse, SMTPServerSession } from 'smtp-server';
import type { AuthResult } from '../auth/authenticator.js';
import { SaslCancelled, type SaslConversation } from '../auth/gssapi.js';
import { SmtpError } from '../lib/errors.js';
import { refuse, type Sessions, type SmtpDeps } from './session.js';

type AuthCallback = (err: Error | null | undefined, response?: SMTPServerAuthenticationResponse) => void;

/**
 * SMTP AUTH (RFC 4954) PLAIN, LOGIN and GSSAPI (RFC 4752, when auth.kerberos is set) through the one authenticator:
 * failure delay and the AD rules included; the master user only with smtp.masterUserAuth. AUTH is offered only
 * inside TLS (see authOffered in on-secure.ts; RFC 4954 §4).
 */
export function makeOnAuth(deps: SmtpDeps, sessions: Sessions) {
  const temporary = (state: ReturnType<Sessions['get']>, callback: AuthCallback) => (err: unknown) => {
    state.log.error({ err }, 'authentication error');
    callback(new SmtpError(454, '4.7.0', 'Temporary authentication failure'));
  };

  const answer = (r: AuthResult, state: ReturnType<Sessions['get']>, callback: AuthCallback): void => {
    if (r.status === 'ok') {
      state.user = r.user;
      state.log = state.log.child({ user: r.user.login, ...(r.master ? { master: r.master.login } : {}) });
      return callback(null, { user: r.user.login });
    }
    // RFC 4954 §6: 454 4.7.0 for a temporary failure, 535 5.7.8 for bad credentials.
    if (r.status === 'tempfail') return callback(new SmtpError(454, '4.7.0', 'Temporary authentication failure'));
    callback(refuse(state, deps.limits.errorLimit, new SmtpError(535, '5.7.8', 'Authentication credentials invalid')));
  };

  /**
   * RFC 4752 over RFC 4954: the Kerberos exchange (auth/gssapi.ts) through the 334 challenges of our smtp-server
   * patch (auth.saslChallenge). The master user has no part in it: a ticket names one user.
   */
  const gssapi = (auth: SMTPServerAuthentication, session: SMTPServerSession, callback: AuthCallback): void => {
    const state = sessions.get(session);
    const send = auth.saslChallenge;
    if (!send) return callback(refuse(state, deps.limits.errorLimit, new SmtpError(504, '5.5.4', 'Unrecognized authentication type')));
    const conv: SaslConversation = {
      challenge: (data) =>
        new Promise((resolve, reject) =>
          send(data, (err, response) => (err ? reject(err.cancelled ? new SaslCancelled() : err) : resolve(response ?? Buffer.alloc(0)))),
        ),
    };
    deps.auth
      .authenticateGssapi('smtp', auth.initialResponse, conv, { client: session.remoteAddress, protocol: 'smtp' })
      // After "*" smtp-server has answered 501 itself and ignores this callback.
      .then((r) => (r.status === 'cancelled' ? callback(new SmtpError(501, '5.7.0', 'Authentication aborted')) : answer(r, state, callback)))
      .catch(temporary(state, callback));
  };

  return (auth: SMTPServerAuthentication, session: SMTPServerSession, callback: AuthCallback): void => {
    const state = sessions.get(session);
    const fail = (err: SmtpError) => callback(refuse(state, deps.limits.errorLimit, err));
    if (auth.method === 'GSSAPI') return gssapi(auth, session, callback);
    if (auth.method !== 'PLAIN' && auth.method !== 'LOGIN') return fail(new SmtpError(504, '5.5.4', 'Unrecognized authentication type'));
    // RFC 4616 §2: an authorization identity other than the authentication identity is acting as another user;
    // that is what the master-user syntax is for, so we do not offer a second way.
    if (auth.authzid && auth.authzid !== auth.username) return fail(new SmtpError(535, '5.7.8', 'Authentication credentials invalid'));
    deps.auth
      .authenticate(auth.username ?? '', auth.password ?? '', {
        client: session.remoteAddress,
        protocol: 'smtp',
        // The seed's master user opens mailboxes (IMAP/POP3); sending as anyone needs smtp.masterUserAuth.
        allowMaster: deps.settings.get('smtp.masterUserAuth'),
      })
      .then((r) => answer(r, state, callback))
      .catch(temporary(state, callback));
  };
}
