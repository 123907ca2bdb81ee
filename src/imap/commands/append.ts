/**
 * APPEND (RFC 3501 §6.3.11) with UIDPLUS APPENDUID (RFC 4315) and MULTIAPPEND (RFC 3502). Each literal's size was
 * checked against APPENDLIMIT before its continuation; messages are stored with CRLF line ends only (DESIGN.md §6).
 * Over quota is `NO [OVERQUOTA]` (RFC 9208 §5.3), a missing folder `NO [TRYCREATE]`.
 */
import type { MailboxRef } from '../connection.js';
import type { ImapSession } from '../connection.js';
import { bad, flagList, mailboxName, no, sameOwner, type ImapCommand } from '../command.js';
import { formatSequenceSet, tokenText, type Token } from '../parser.js';
import { parseImapDate } from '../response.js';

export function toCrlf(buf: Buffer): Buffer {
  if (!buf.includes(0x0a) && !buf.includes(0x0d)) return buf;
  const text = buf.toString('latin1').replace(/\r\n|\r|\n/g, '\r\n');
  return Buffer.from(text, 'latin1');
}

interface Item {
  message: Buffer;
  flags: string[];
  date?: Date;
}

/** `[flags] [date-time] literal`, repeated (RFC 3502 §6); everything is checked before anything is stored. */
function parseItems(args: Token[]): Item[] {
  const items: Item[] = [];
  let flags: string[] | undefined;
  let date: Date | undefined;
  for (const t of args) {
    if (t.type === 'string' && t.literal) {
      items.push({ message: t.value, flags: flags ?? [], date });
      flags = undefined;
      date = undefined;
    } else if (t.type === 'list' && !flags && !date) {
      flags = flagList(t).filter((f) => f !== '\\Recent');
    } else if (t.type !== 'list' && !date) {
      date = parseImapDate(tokenText(t) ?? '', true);
      if (!date) throw bad('Invalid date-time');
    } else throw bad('Invalid APPEND arguments');
  }
  if (!items.length || flags || date) throw bad('Expected message literal');
  return items;
}

/** Removes what a failed MULTIAPPEND had already stored: RFC 3502 §6 makes it all or nothing. */
async function rollBack(session: ImapSession, ref: MailboxRef, uids: number[]): Promise<void> {
  if (!uids.length) return;
  const store = session.deps.mailbox;
  try {
    await store.storeFlags(ref.owner, ref.folder, uids, 'add', ['\\Deleted']);
    await store.expunge(ref.owner, ref.folder, uids);
  } catch (err) {
    session.deps.log.warn({ err, folder: ref.folder, uids }, 'imap: could not roll back a failed MULTIAPPEND');
  }
}

export const append: ImapCommand = {
  names: ['APPEND'],
  states: ['authenticated', 'selected'],
  async handle(session, cmd) {
    if (cmd.args.length < 2) throw bad('Wrong number of arguments for APPEND');
    const name = mailboxName(cmd.args[0]);
    const items = parseItems(cmd.args.slice(1));
    for (const item of items) {
      if (item.message.length > session.deps.appendLimit) throw no('Message too large', 'TOOBIG');
      if (item.message.length === 0) throw no('Empty message');
    }
    const ref = session.resolve(name);
    const uids: number[] = [];
    let uidValidity = 0;
    try {
      for (const item of items) {
        const result = await session.deps.mailbox.append(ref.owner, ref.folder, toCrlf(item.message), item.flags, item.date);
        uids.push(result.uid);
        uidValidity = result.uidValidity;
      }
    } catch (err) {
      await rollBack(session, ref, uids);
      throw err;
    }
    const sel = session.selected;
    if (sel && sameOwner(sel.owner, ref.owner) && sel.folder === ref.folder) session.checkExists = true;
    return { code: `APPENDUID ${uidValidity} ${formatSequenceSet(uids)}`, text: 'APPEND completed' };
  },
};
