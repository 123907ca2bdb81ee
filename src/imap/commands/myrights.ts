/**
 * MYRIGHTS (RFC 4314 §3.5). Rights are not stored: they follow from Active Directory (DESIGN.md: AD is the only
 * source of truth). The owner has every right on the own mailbox; members of a group have every right but
 * administer ('a') on its shared folders, because membership, not SETACL, decides who shares them.
 */
import { expectArgs, mailboxName, type ImapCommand } from '../command.js';
import type { MailboxRef } from '../connection.js';
import { encodeMailbox } from '../response.js';

export const OWNER_RIGHTS = 'lrswipkxtea';
export const MEMBER_RIGHTS = 'lrswipkxte';

export function rightsOf(ref: MailboxRef): string {
  return ref.shared ? MEMBER_RIGHTS : OWNER_RIGHTS;
}

export const myrights: ImapCommand = {
  names: ['MYRIGHTS'],
  states: ['authenticated', 'selected'],
  async handle(session, cmd) {
    expectArgs(cmd, 1);
    const name = mailboxName(cmd.args[0], session);
    const ref = session.resolve(name);
    await session.deps.mailbox.openFolder(ref.owner, ref.folder);
    session.write(Buffer.concat([Buffer.from('* MYRIGHTS '), encodeMailbox(name, session), Buffer.from(` ${rightsOf(ref)}\r\n`)]));
  },
};
