import type { SMTPServerAuthentication, SMTPServerAuthenticationResponse, SMTPServerSession } from 'smtp-server';
import { SmtpError } from '../lib/errors.js';
import { refuse, type Sessions, type SmtpDeps } from './session.js';

/**
 * SMTP AUTH (RFC 4954) PLAIN and LOGIN through the one authenticator: failure delay and the AD rules included;
 * the master user only with smtp.masterUserAuth. AUTH is offered only inside TLS (see authOffered in on-secure.ts; RFC 4954 §4).
 */
export function makeOnAuth(deps: SmtpDeps, sessions: Sessions) {
  return (
    auth: SMTPServerAuthentication,
    session: SMTPServerSession,
    callback: (err: Error | null | undefined, response?: SMTPServerAuthenticationResponse) => void,
  ): void => {
    const state = sessions.get(session);
    const fail = (err: SmtpError) => callback(refuse(state, deps.limits.errorLimit, err));
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
      .then((r) => {
        if (r.status === 'ok') {
          state.user = r.user;
          state.log = state.log.child({ user: r.user.login, ...(r.master ? { master: r.master.login } : {}) });
          return callback(null, { user: r.user.login });
        }
        // RFC 4954 §6: 454 4.7.0 for a temporary failure, 535 5.7.8 for bad credentials.
        if (r.status === 'tempfail') return callback(new SmtpError(454, '4.7.0', 'Temporary authentication failure'));
        fail(new SmtpError(535, '5.7.8', 'Authentication credentials invalid'));
      })
      .catch((err: unknown) => {
        state.log.error({ err }, 'authentication error');
        callback(new SmtpError(454, '4.7.0', 'Temporary authentication failure'));
      });
  };
}
