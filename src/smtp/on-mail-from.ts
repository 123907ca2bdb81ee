import type { SMTPServerAddress, SMTPServerSession } from 'smtp-server';
import { SmtpError, TempFailure } from '../lib/errors.js';
import { isValidHelo } from './policy.js';
import { filterContext, fromLocalNetwork, limitSubject, refuse, runFilters, type SessionState, type Sessions, type SmtpDeps } from './session.js';

/**
 * MAIL FROM: the HELO check the seed offers, and for authenticated users the rule that they send only as one of
 * their own addresses or of a group they belong to (smtp.senderMustMatchLogin, on by default).
 */
export function makeOnMailFrom(deps: SmtpDeps, sessions: Sessions) {
  return (address: SMTPServerAddress, session: SMTPServerSession, callback: (err?: Error | null) => void): void => {
    const state = sessions.get(session);
    // A new transaction: the filters' tags and marks of the previous one do not carry over (RFC 5321 §4.1.4).
    state.tags = {};
    state.marks = [];
    deps.sendLimits?.release(session.id);
    check(deps, state, address.address, session)
      .then(async (err) => err ?? (await runFilters(deps, state, 'mail', filterContext(session, state, { from: address.address }))))
      // Last, so a message refused for another reason neither reserves nor spends the user's hourly allowance.
      .then((err) => err ?? deps.sendLimits?.checkMail(limitSubject(session, state)) ?? null)
      .then((err) => {
        if (err) {
          state.log.info({ event: 'reject', stage: 'mail', from: address.address, reply: err.message }, 'sender rejected');
          deps.stats?.countRejected({ listener: state.role, client: session.remoteAddress, stage: 'mail', from: address.address, reply: `${err.code} ${err.message}` });
          return callback(err.temporary ? err : refuse(state, deps.limits.errorLimit, err));
        }
        callback();
      })
      .catch((err: unknown) => {
        state.log.error({ err }, 'MAIL FROM check failed');
        callback(new SmtpError(451, '4.3.0', 'Temporary failure, try again later'));
      });
  };
}

async function check(deps: SmtpDeps, state: SessionState, from: string, session: SMTPServerSession): Promise<SmtpError | null> {
  // Submission is for authenticated users only (RFC 6409 §4.3). smtp-server enforces it only while AUTH is offered,
  // and we do not offer AUTH before TLS (see authOffered), so the rule is ours. RFC 3207 §4: 530 before STARTTLS.
  if (state.role !== 'smtp' && !state.user) {
    return new SmtpError(530, '5.7.0', session.secure ? 'Authentication required' : 'Must issue a STARTTLS command first');
  }
  // Like Postfix's permit_mynetworks, permit_sasl_authenticated before reject_invalid_helo_hostname: the check is for
  // strangers on port 25, not for our users or the printers and scanners of smtp.relayFrom / smtp.trustedNetworks.
  if (
    deps.settings.get('smtp.rejectInvalidHelo') &&
    !fromLocalNetwork(deps.settings, session.remoteAddress, state.user !== undefined) &&
    !isValidHelo(session.hostNameAppearsAs)
  ) {
    return new SmtpError(504, '5.5.2', `<${session.hostNameAppearsAs || ''}>: Helo command rejected: need fully-qualified hostname`);
  }
  // The null reverse-path (RFC 5321 §4.5.5): bounces, receipts. A sender is never routed by us (a DSN goes to it
  // as to any remote address), so quoted local parts and the like are accepted here; RCPT TO is where they matter.
  if (from === '') return null;
  if (!state.user || !deps.settings.get('smtp.senderMustMatchLogin')) return null;
  try {
    const r = await deps.resolver.resolve(from, { fromLocalNetwork: true });
    const user = state.user;
    if (r.kind === 'mailbox' && r.user.dn.toLowerCase() === user.dn.toLowerCase()) return null;
    if (r.kind === 'list' || r.kind === 'shared') {
      const groups = await deps.directory.groupsOf(user);
      if (groups.some((g) => g.dn.toLowerCase() === r.group.dn.toLowerCase())) return null;
    }
  } catch (err) {
    if (err instanceof TempFailure) return new SmtpError(451, '4.4.3', 'Directory temporarily unavailable, try again later');
    throw err;
  }
  return new SmtpError(553, '5.7.1', `<${from}>: Sender address rejected: not owned by user ${state.user.login}`);
}
