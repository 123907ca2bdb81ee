/** STATUS (RFC 3501 §6.3.10): counters of a folder without selecting it. */
import { bad, expectArgs, mailboxName, sameOwner, type ImapCommand } from '../command.js';
import { encodeMailbox } from '../response.js';
import { enableCondstore } from '../condstore.js';
import type { ImapSession, MailboxRef } from '../connection.js';
import type { Token } from '../parser.js';
import type { MessageMeta } from '../../store/mailbox.js';
import type { MailboxOwner } from '../../store/types.js';

/**
 * RFC 3501 §6.3.10 RECENT: messages not yet claimed by a SELECT, plus, for the folder this session has selected,
 * the ones it claimed itself.
 */
async function recentCount(session: ImapSession, owner: MailboxOwner, folder: string, messages: MessageMeta[]): Promise<number> {
  const first = await session.deps.mailbox.firstRecentUid(owner, folder);
  let n = messages.filter((m) => m.uid >= first).length;
  const sel = session.selected;
  if (sel && sel.folder === folder && sameOwner(sel.owner, owner)) n += messages.filter((m) => m.uid < first && sel.recent.has(m.uid)).length;
  return n;
}

// HIGHESTMODSEQ: RFC 7162 §3.1.7.
const ITEMS = new Set(['MESSAGES', 'RECENT', 'UIDNEXT', 'UIDVALIDITY', 'UNSEEN', 'SIZE', 'HIGHESTMODSEQ']);
/** RFC 9051 §6.3.11 status-att: DELETED is new, RECENT is gone with \Recent. */
const REV2_ITEMS = new Set(['MESSAGES', 'UIDNEXT', 'UIDVALIDITY', 'UNSEEN', 'DELETED', 'SIZE', 'HIGHESTMODSEQ']);

/** The status items of a STATUS command or a LIST RETURN (STATUS (...)) (RFC 5819), checked before any work. */
export function statusItems(t: Token | undefined, session: { rev2: boolean }): string[] {
  if (!t || t.type !== 'list' || !t.items.length) throw bad('Expected status items');
  const known = session.rev2 ? REV2_ITEMS : ITEMS;
  return t.items.map((i) => {
    const item = i.type === 'atom' ? i.value.toUpperCase() : '';
    if (!known.has(item)) throw bad(`Unknown status item ${item}`);
    return item;
  });
}

/** Sends `* STATUS name (...)` for a folder. SIZE is RFC 8438's: the sum of the messages' RFC822.SIZE. */
export async function sendStatus(session: ImapSession, name: string, ref: MailboxRef, items: string[]): Promise<void> {
  // RFC 7162 §3.1: STATUS (HIGHESTMODSEQ) is a CONDSTORE enabling command.
  if (items.includes('HIGHESTMODSEQ')) enableCondstore(session);
  const state = await session.deps.mailbox.openFolder(ref.owner, ref.folder);
  const out: string[] = [];
  for (const item of items) {
    if (item === 'MESSAGES') out.push(`MESSAGES ${state.messages.length}`);
    else if (item === 'RECENT') out.push(`RECENT ${await recentCount(session, ref.owner, ref.folder, state.messages)}`);
    else if (item === 'UIDNEXT') out.push(`UIDNEXT ${state.uidNext}`);
    else if (item === 'UIDVALIDITY') out.push(`UIDVALIDITY ${state.uidValidity}`);
    else if (item === 'UNSEEN') out.push(`UNSEEN ${state.messages.filter((m) => !m.flags.includes('\\Seen')).length}`);
    else if (item === 'DELETED') out.push(`DELETED ${state.messages.filter((m) => m.flags.includes('\\Deleted')).length}`);
    else if (item === 'SIZE') out.push(`SIZE ${state.messages.reduce((n, m) => n + m.size, 0)}`);
    // §3.1.7: 0 for a folder without persistent MODSEQs.
    else if (item === 'HIGHESTMODSEQ') out.push(`HIGHESTMODSEQ ${state.messages.every((m) => m.modseq !== undefined) ? state.modseq : 0}`);
  }
  session.write(Buffer.concat([Buffer.from('* STATUS '), encodeMailbox(name, session), Buffer.from(` (${out.join(' ')})\r\n`)]));
}

export const status: ImapCommand = {
  names: ['STATUS'],
  states: ['authenticated', 'selected'],
  async handle(session, cmd) {
    expectArgs(cmd, 2);
    const name = mailboxName(cmd.args[0], session);
    const items = statusItems(cmd.args[1], session);
    await sendStatus(session, name, session.resolve(name), items);
  },
};
