/** RENAME (RFC 3501 §6.3.5): renaming INBOX is left to the store (it moves the messages, INBOX stays). */
import { denormalized, expectArgs, mailboxName, no, type ImapCommand } from '../command.js';
import { sendMailboxList } from './list.js';

export const rename: ImapCommand = {
  names: ['RENAME'],
  states: ['authenticated', 'selected'],
  async handle(session, cmd) {
    expectArgs(cmd, 2);
    const from = session.resolve(mailboxName(cmd.args[0], session));
    const to = session.resolve(mailboxName(cmd.args[1], session));
    // A rename moves a folder inside one store; across mailboxes it would be a copy of every message.
    if (from.shared !== to.shared) throw no('Cannot rename across mailboxes', 'CANNOT');
    if (from.folder === 'INBOX' && from.shared) throw no('Cannot rename a shared INBOX', 'CANNOT');
    const folders = await session.deps.mailbox.listFolders(to.owner);
    if (folders.some((f) => f.name === to.folder)) throw no('Target mailbox exists', 'ALREADYEXISTS');
    await session.deps.mailbox.renameFolder(from.owner, from.folder, to.folder);
    // RFC 9051 §6.3.6: a new name the server normalized (to NFC, §5.1) is told back with OLDNAME.
    const given = session.rev2 ? denormalized(cmd.args[1], session) : undefined;
    if (given !== undefined) await sendMailboxList(session, to, given);
  },
};
