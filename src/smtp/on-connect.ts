import type { SMTPServerSession } from 'smtp-server';
import type { ListenerRole, Sessions, SmtpDeps } from './session.js';

export const COMPONENT: Record<ListenerRole, string> = {
  smtp: 'transfer/smtpd',
  submission: 'submission/smtpd',
  smtps: 'submission/smtpd',
};

/**
 * A client connects: per-session state, and the runtime options read fresh so a settings change applies to the
 * next connection without a restart — the seed's "allow authentication on port 25" and the message size limit.
 */
export function makeOnConnect(deps: SmtpDeps, role: ListenerRole, sessions: Sessions, applyRuntimeOptions: () => void) {
  return (session: SMTPServerSession, callback: (err?: Error | null) => void): void => {
    applyRuntimeOptions();
    const log = deps.log.child({ component: COMPONENT[role], session: session.id, client: session.remoteAddress });
    sessions.set(session, { role, log, errors: 0 });
    // Port 25 is for other MTAs: no AUTH there unless the admin turned it on (RFC 6409 §4: submission is 587).
    if (role === 'smtp' && !deps.settings.get('smtp.authOnPort25')) session.disabledCommands = ['AUTH'];
    log.info({ event: 'connect', port: role }, 'connect');
    callback();
  };
}

export function makeOnClose(sessions: Sessions) {
  return (session: SMTPServerSession): void => {
    const state = (() => {
      try {
        return sessions.get(session);
      } catch {
        return undefined;
      }
    })();
    state?.log.info({ event: 'disconnect', errors: state.errors }, 'disconnect');
    sessions.delete(session);
  };
}
