/** CREATE (RFC 3501 §6.3.3): creating INBOX or an existing name is refused with ALREADYEXISTS (RFC 5530). */
import { bad, expectArgs, mailboxName, no, SHARED_PREFIX, type ImapCommand } from '../command.js';

export const create: ImapCommand = {
  names: ['CREATE'],
  states: ['authenticated', 'selected'],
  async handle(session, cmd) {
    expectArgs(cmd, 1);
    const name = mailboxName(cmd.args[0]);
    if (!name || name.split('/').some((p) => p === '')) throw bad('Invalid mailbox name');
    // "Shared" is the shared namespace's root for users in groups with shared folders.
    if (session.sharedGroups.length && name.toLowerCase() === SHARED_PREFIX.toLowerCase()) throw no('Reserved name', 'CANNOT');
    const ref = session.resolve(name);
    const folders = await session.deps.mailbox.listFolders(ref.owner);
    if (folders.some((f) => f.name === ref.folder)) throw no('Mailbox already exists', 'ALREADYEXISTS');
    await session.deps.mailbox.createFolder(ref.owner, ref.folder);
  },
};
