/**
 * CREATE (RFC 3501 §6.3.3): creating INBOX or an existing name is refused with ALREADYEXISTS (RFC 5530).
 *
 * CREATE-SPECIAL-USE (RFC 6154 §3): `CREATE name (USE (\Sent))`. The store gives a folder its special use from
 * its name (a top-level "Sent", "Sent Items", "Archive", …, as Dovecot's and Outlook's defaults name them), so a
 * requested use is honoured when the name carries it and refused otherwise: RFC 6154 §3 says a server that cannot
 * give the use MUST NOT create the mailbox and SHOULD say NO [USEATTR].
 */
import { specialUseOf } from '../../store/names.js';
import { bad, denormalized, mailboxName, no, SHARED_PREFIX, type ImapCommand } from '../command.js';
import type { Token } from '../parser.js';
import { sendMailboxList } from './list.js';

const USES = new Set(['\\ALL', '\\ARCHIVE', '\\DRAFTS', '\\FLAGGED', '\\JUNK', '\\SENT', '\\TRASH']);

/** The USE list of the RFC 4466 create parameters; any other parameter is BAD. */
function requestedUses(t: Token | undefined): string[] {
  if (!t) return [];
  if (t.type !== 'list') throw bad('Expected CREATE parameters');
  const uses: string[] = [];
  for (let i = 0; i < t.items.length; i += 2) {
    const key = t.items[i];
    const value = t.items[i + 1];
    if (key.type !== 'atom' || key.value.toUpperCase() !== 'USE' || value?.type !== 'list') throw bad('Unknown CREATE parameter');
    for (const u of value.items) {
      if (u.type !== 'atom' || !u.value.startsWith('\\')) throw bad('Invalid special-use attribute');
      uses.push(u.value);
    }
  }
  return uses;
}

export const create: ImapCommand = {
  names: ['CREATE'],
  states: ['authenticated', 'selected'],
  async handle(session, cmd) {
    if (cmd.args.length < 1 || cmd.args.length > 2) throw bad('Wrong number of arguments for CREATE');
    const name = mailboxName(cmd.args[0], session);
    const uses = requestedUses(cmd.args[1]);
    if (!name || name.split('/').some((p) => p === '')) throw bad('Invalid mailbox name');
    // "Shared" is the shared namespace's root for users in groups with shared folders.
    if (session.sharedGroups.length && name.toLowerCase() === SHARED_PREFIX.toLowerCase()) throw no('Reserved name', 'CANNOT');
    const ref = session.resolve(name);
    if (uses.length) {
      const known = uses.filter((u) => USES.has(u.toUpperCase()));
      // RFC 6154 §3: an attribute the server does not know, or cannot give to this name, refuses the CREATE.
      const given = !ref.shared && !ref.folder.includes('/') ? specialUseOf(ref.folder) : undefined;
      if (known.length !== uses.length || uses.length > 1 || !given || given.toUpperCase() !== uses[0].toUpperCase()) {
        throw no(given ? `This name is for ${given}` : 'The special use follows the name (e.g. Sent, Drafts, Archive)', 'USEATTR');
      }
    }
    const folders = await session.deps.mailbox.listFolders(ref.owner);
    if (folders.some((f) => f.name === ref.folder)) throw no('Mailbox already exists', 'ALREADYEXISTS');
    await session.deps.mailbox.createFolder(ref.owner, ref.folder);
    // RFC 9051 §6.3.4: a name the server normalized (to NFC, §5.1) is told back with OLDNAME.
    const given = session.rev2 ? denormalized(cmd.args[0], session) : undefined;
    if (given !== undefined) await sendMailboxList(session, ref, given);
  },
};
