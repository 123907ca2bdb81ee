/**
 * SETACL and DELETEACL (RFC 4314 §3.1, §3.2): refused. Who shares a folder is decided by AD group membership
 * (`directory.groupDelivery: shared`), so an ACL set over IMAP would be a second, conflicting source of truth.
 */
import { expectArgs, mailboxName, no, type ImapCommand } from '../command.js';

export const setacl: ImapCommand = {
  names: ['SETACL', 'DELETEACL'],
  states: ['authenticated', 'selected'],
  async handle(session, cmd) {
    expectArgs(cmd, cmd.command === 'SETACL' ? 3 : 2);
    const ref = session.resolve(mailboxName(cmd.args[0], session));
    await session.deps.mailbox.openFolder(ref.owner, ref.folder);
    throw no('Access rights follow Active Directory group membership', 'NOPERM');
  },
};
