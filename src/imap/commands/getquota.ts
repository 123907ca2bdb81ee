/**
 * GETQUOTA (RFC 9208 §4.2): STORAGE in KiB; a mailbox without a limit has no resource to report. The user's own
 * mailbox is quota root ""; a group's shared folders are root "Shared/<group>".
 */
import type { MailboxOwner } from '../../store/types.js';
import { astring, expectArgs, no, type ImapCommand } from '../command.js';
import type { ImapSession } from '../connection.js';
import { encodeString } from '../response.js';

export async function quotaLine(session: ImapSession, owner: MailboxOwner, root: string): Promise<Buffer> {
  const q = await session.deps.mailbox.quota(owner);
  const resources = q.limitBytes ? `STORAGE ${Math.ceil(q.usedBytes / 1024)} ${Math.floor(q.limitBytes / 1024)}` : '';
  return Buffer.concat([Buffer.from('* QUOTA '), encodeString(root), Buffer.from(` (${resources})\r\n`)]);
}

export const getquota: ImapCommand = {
  names: ['GETQUOTA'],
  states: ['authenticated', 'selected'],
  async handle(session, cmd) {
    expectArgs(cmd, 1);
    const root = astring(cmd.args[0], 'quota root');
    if (root === '') return void session.write(await quotaLine(session, session.owner!, ''));
    const ref = (() => {
      try {
        return session.resolve(root);
      } catch {
        return undefined;
      }
    })();
    if (!ref?.shared || ref.folder !== 'INBOX') throw no('No such quota root', 'NONEXISTENT');
    session.write(await quotaLine(session, ref.owner, session.sharedName(ref.shared, 'INBOX')));
  },
};
