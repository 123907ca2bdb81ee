import type { SMTPServerSession } from 'smtp-server';
import { disabledCommands } from './on-secure.js';
import { filterContext, runFilters, type ListenerRole, type Sessions, type SmtpDeps } from './session.js';

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
    const state = { role, log, errors: 0, tags: {}, marks: [] };
    sessions.set(session, state);
    // No AUTH before TLS, and none on port 25 unless the admin turned it on (see authOffered); onSecure decides again.
    session.disabledCommands = disabledCommands(role, session.secure, deps.settings);
    log.info({ event: 'connect', port: role }, 'connect');
    // Connect-phase filters (DNSBL): a listed client is refused before it can say anything.
    runFilters(deps, state, 'connect', filterContext(session, state))
      .then((err) => {
        if (err) {
          log.info({ event: 'reject', stage: 'connect', reply: err.message }, 'client rejected');
          deps.stats?.countRejected({ listener: role, client: session.remoteAddress, stage: 'connect', reply: `${(err as { responseCode?: number }).responseCode ?? 554} ${err.message}` });
        }
        callback(err);
      })
      .catch((err: unknown) => {
        log.error({ err }, 'connect filters failed');
        callback(Object.assign(new Error('4.3.0 Temporary failure, try again later'), { responseCode: 421 }));
      });
  };
}

export function makeOnClose(sessions: Sessions) {
  return (session: SMTPServerSession): void => {
    const state = sessions.find(session);
    state?.log.info({ event: 'disconnect', errors: state.errors }, 'disconnect');
    sessions.delete(session);
  };
}
