/** DELETE (RFC 3501 §6.3.4): INBOX cannot be deleted; a folder's children stay. */
import { expectArgs, mailboxName, no, type ImapCommand } from '../command.js';

export const deleteCommand: ImapCommand = {
  names: ['DELETE'],
  states: ['authenticated', 'selected'],
  async handle(session, cmd) {
    expectArgs(cmd, 1);
    const name = mailboxName(cmd.args[0], session);
    const ref = session.resolve(name);
    if (ref.folder === 'INBOX') throw no('INBOX cannot be deleted', 'CANNOT');
    if (session.selected?.name === name) session.unselect();
    await session.deps.mailbox.deleteFolder(ref.owner, ref.folder);
  },
};
