import type { SMTPServerAddress, SMTPServerSession } from 'smtp-server';
import { SmtpError, TempFailure } from '../lib/errors.js';
import type { Resolution } from '../resolver/types.js';
import { isRoutingTrick } from './policy.js';
import { filterContext, fromLocalNetwork, limitSubject, mayRelayByAddress, refuse, runFilters, type SessionState, type Sessions, type SmtpDeps } from './session.js';

/**
 * RCPT TO, the seed's SMTP access policy: local and relay domains accept mail from anyone; any other domain only
 * from authenticated clients and the "allow relay from IP addresses" list — never an open relay, in any address
 * form. Unknown local users are refused now (550 5.1.1), not bounced later; a directory that cannot answer is 451.
 */
export function makeOnRcptTo(deps: SmtpDeps, sessions: Sessions) {
  return (address: SMTPServerAddress, session: SMTPServerSession, callback: (err?: Error | null) => void): void => {
    const state = sessions.get(session);
    decide(deps, state, address.address, session.remoteAddress)
      .then(async (err) => err ?? (await runFilters(deps, state, 'rcpt', filterContext(session, state, { rcpt: address.address.toLowerCase() }))))
      // Last: only recipients accepted otherwise count against the hourly allowance.
      .then((err) => err ?? deps.sendLimits?.checkRcpt(limitSubject(session, state)) ?? null)
      .then((err) => {
        if (err) {
          state.log.info({ event: 'reject', stage: 'rcpt', from: session.envelope.mailFrom && session.envelope.mailFrom.address, to: address.address, reply: err.message }, 'recipient rejected');
          deps.stats?.countRejected({ listener: state.role, client: session.remoteAddress, stage: 'rcpt', from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '', to: address.address, reply: `${err.code} ${err.message}` });
          return callback(err.temporary ? err : refuse(state, deps.limits.errorLimit, err));
        }
        callback();
      })
      .catch((err: unknown) => {
        state.log.error({ err, to: address.address }, 'RCPT TO check failed');
        callback(new SmtpError(451, '4.3.0', 'Temporary failure, try again later'));
      });
  };
}

async function decide(deps: SmtpDeps, state: SessionState, rcpt: string, ip: string): Promise<SmtpError | null> {
  // Source routes, percent hack, bang paths, quoted local parts: never routed, whoever asks (RFC 5321 §3.6.1).
  if (isRoutingTrick(rcpt)) return new SmtpError(550, '5.7.1', `<${rcpt}>: Relay access denied`);
  // A bounce to a sender we rewrote with SRS (src/delivery/srs.ts): ours to deliver when we signed it and it is
  // fresh; refused when forged or stale — the SRS domain relays nothing else.
  const srs = deps.srs?.reverse(rcpt);
  if (srs?.kind === 'valid') return null;
  if (srs?.kind === 'invalid') return new SmtpError(550, '5.7.1', `<${rcpt}>: Recipient address rejected: invalid or expired SRS address`);
  const authenticated = state.user !== undefined;
  let r: Resolution;
  try {
    r = await deps.resolver.resolve(rcpt, { fromLocalNetwork: fromLocalNetwork(deps.settings, ip, authenticated) });
  } catch (err) {
    if (err instanceof TempFailure) return new SmtpError(451, '4.4.3', `<${rcpt}>: Recipient address lookup failed, try again later`);
    throw err;
  }
  switch (r.kind) {
    case 'mailbox':
    case 'list':
    case 'shared':
    case 'relay':
      return null;
    case 'external':
      if (authenticated || mayRelayByAddress(deps.settings, ip)) return null;
      return new SmtpError(554, '5.7.1', `<${rcpt}>: Relay access denied`);
    case 'invalid':
      switch (r.reason) {
        case 'syntax':
          return new SmtpError(501, '5.1.3', `<${rcpt}>: Bad recipient address syntax`);
        case 'unknown':
          return new SmtpError(550, '5.1.1', `<${rcpt}>: Recipient address rejected: User unknown`);
        case 'disabled':
          return new SmtpError(550, '5.2.1', `<${rcpt}>: Recipient address rejected: Mailbox disabled`);
        case 'local-network-only':
          return new SmtpError(550, '5.7.1', `<${rcpt}>: Recipient address rejected: accepts mail from the local network only`);
      }
  }
}
