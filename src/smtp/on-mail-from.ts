import type { SMTPServerAddress, SMTPServerSession } from 'smtp-server';
import { SmtpError, TempFailure } from '../lib/errors.js';
import { isRoutingTrick, isValidHelo } from './policy.js';
import { refuse, type SessionState, type Sessions, type SmtpDeps } from './session.js';

/**
 * MAIL FROM: the HELO check the seed offers, and for authenticated users the rule that they send only as one of
 * their own addresses or of a group they belong to (smtp.senderMustMatchLogin, on by default).
 */
export function makeOnMailFrom(deps: SmtpDeps, sessions: Sessions) {
  return (address: SMTPServerAddress, session: SMTPServerSession, callback: (err?: Error | null) => void): void => {
    const state = sessions.get(session);
    check(deps, state, address.address, session)
      .then((err) => {
        if (err) {
          state.log.info({ event: 'reject', stage: 'mail', from: address.address, reply: err.message }, 'sender rejected');
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
  if (deps.settings.get('smtp.rejectInvalidHelo') && !state.user && !isValidHelo(session.hostNameAppearsAs)) {
    return new SmtpError(504, '5.5.2', `<${session.hostNameAppearsAs || ''}>: Helo command rejected: need fully-qualified hostname`);
  }
  if (from === '') return null; // the null reverse-path (RFC 5321 §4.5.5): bounces, receipts
  if (isRoutingTrick(from)) return new SmtpError(553, '5.1.7', `<${from}>: Sender address rejected: bad address syntax`);
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
