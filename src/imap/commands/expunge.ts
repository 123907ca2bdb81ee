/**
 * EXPUNGE (RFC 3501 §6.4.3) and UID EXPUNGE (RFC 4315 §2.1). With the "deleted to Trash" option
 * (`mailbox.deletedToTrash`) messages Outlook flags \Deleted outside Trash are moved to Trash instead of destroyed.
 *
 * When the move happens: at the EXPUNGE (and CLOSE), not at the flag. Outlook's IMAP delete only sets \Deleted
 * (the message shows struck through and can be undeleted) and purges later; moving at the STORE would make the
 * undo impossible, and the EXPUNGE it would imply may not be sent during a STORE (RFC 3501 §7.4.1). A message this
 * session COPYed elsewhere before is really expunged: that is a client's own "move" (COPY, \Deleted, EXPUNGE, what
 * clients without MOVE do, Outlook included, also when it moves to Trash itself), and the copy it made is the one
 * the user wanted — a second one in Trash would be a duplicate.
 */
import type { ImapSession } from '../connection.js';
import { expectArgs, no, resolveSet, type ImapCommand } from '../command.js';
import { hasModseq, noteModseq, qresyncEnabled } from '../condstore.js';

export async function expungeDeleted(session: ImapSession, only: Set<number> | undefined, silent: boolean): Promise<void> {
  const sel = session.selected!;
  const owner = sel.owner;
  const store = session.deps.mailbox;
  const deleted = sel.messages.filter((m) => m.flags.includes('\\Deleted') && (!only || only.has(m.uid))).map((m) => m.uid);
  if (!deleted.length) return;
  // Shared folders have no Trash of their own; the option is for the user's own mailbox.
  if (!sel.shared && session.deps.settings.get('mailbox.deletedToTrash') === true) {
    const folders = await store.listFolders(owner);
    const trash = folders.find((f) => f.specialUse === '\\Trash')?.name ?? 'Trash';
    if (sel.folder !== trash) {
      const toTrash = deleted.filter((uid) => !sel.copied.has(uid));
      const copied = deleted.filter((uid) => sel.copied.has(uid));
      if (toTrash.length) {
        const { mapping } = await store.copy(owner, sel.folder, toTrash, trash, { move: true });
        if (mapping.length) await store.storeFlags(owner, trash, mapping.map(([, to]) => to), 'remove', ['\\Deleted']);
        session.applyExpunge(toTrash, silent);
      }
      if (copied.length) session.applyExpunge(await store.expunge(owner, sel.folder, copied), silent);
      return;
    }
  }
  const removed = await store.expunge(owner, sel.folder, only ? deleted : undefined);
  session.applyExpunge(removed, silent);
}

export const expunge: ImapCommand = {
  names: ['EXPUNGE'],
  states: ['selected'],
  uid: true,
  async handle(session, cmd) {
    expectArgs(cmd, cmd.uid ? 1 : 0);
    if (session.selected!.readOnly) throw no('Mailbox is read-only', 'READ-ONLY');
    const only = cmd.uid ? new Set(resolveSet(session, cmd.args[0].type === 'atom' ? cmd.args[0].value : '', true).map((r) => r.meta.uid)) : undefined;
    await expungeDeleted(session, only, false);
    // RFC 7162 §3.2.7 (as Dovecot does): with QRESYNC the tagged OK gives the HIGHESTMODSEQ after the expunge, since
    // VANISHED carries none.
    const sel = session.selected!;
    // Our own expunge's MODSEQ is in the change it queued; one whose messages have all left the view is known.
    for (const ch of sel.pending) if (ch.kind === 'expunge' && ch.uids.every((u) => session.indexOfUid(u) < 0)) noteModseq(sel, ch.modseq);
    if (qresyncEnabled(session) && hasModseq(sel)) return { code: `HIGHESTMODSEQ ${sel.highestModseq}`, text: 'Expunge completed' };
  },
};
