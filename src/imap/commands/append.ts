/**
 * APPEND (RFC 3501 §6.3.11) with UIDPLUS APPENDUID (RFC 4315), MULTIAPPEND (RFC 3502) and CATENATE (RFC 4469).
 * Each literal's size was checked against APPENDLIMIT before its continuation; messages are stored with CRLF line
 * ends only (DESIGN.md §6). Over quota is `NO [OVERQUOTA]` (RFC 9208 §5.3), a missing folder `NO [TRYCREATE]`, a
 * CATENATE URL that does not resolve `NO [BADURL url]` (RFC 4469 §5).
 */
import type { MailboxRef } from '../connection.js';
import type { ImapSession } from '../connection.js';
import { bad, flagList, mailboxName, no, sameOwner, type ImapCommand } from '../command.js';
import { formatSequenceSet, parseFetchAtt, tokenText, type Token } from '../parser.js';
import { parseMime } from '../mime.js';
import { sectionData } from './fetch.js';
import { encodeBinaryParts } from '../binary.js';
import { parseImapDate } from '../response.js';

export function toCrlf(buf: Buffer): Buffer {
  if (!buf.includes(0x0a) && !buf.includes(0x0d)) return buf;
  const text = buf.toString('latin1').replace(/\r\n|\r|\n/g, '\r\n');
  return Buffer.from(text, 'latin1');
}

interface Item {
  /** The literal, or, for CATENATE, filled in from `parts` once the target is known to exist. */
  message: Buffer;
  /** RFC 4469 §5: the CATENATE list, TEXT literals and URLs. */
  parts?: Token[];
  flags: string[];
  date?: Date;
}

/**
 * RFC 6855 §4 `UTF8 (literal8)`: a message with UTF-8 headers, allowed once the client enabled UTF8=ACCEPT (before
 * that the syntax does not exist for the session: BAD).
 */
function utf8Literal(t: Token | undefined, utf8: boolean): Buffer {
  if (!utf8) throw bad('UTF8 needs ENABLE UTF8=ACCEPT');
  if (t?.type !== 'list' || t.items.length !== 1 || t.items[0].type !== 'string' || !t.items[0].literal) throw bad('Expected UTF8 (literal)');
  return t.items[0].value;
}

/** `[flags] [date-time] literal`, repeated (RFC 3502 §6); everything is checked before anything is stored. */
function parseItems(args: Token[], utf8: boolean): Item[] {
  const items: Item[] = [];
  let flags: string[] | undefined;
  let date: Date | undefined;
  let catenate = false;
  let utf8Next = false;
  for (const t of args) {
    if (utf8Next) {
      items.push({ message: utf8Literal(t, utf8), flags: flags ?? [], date });
      flags = undefined;
      date = undefined;
      utf8Next = false;
    } else if ((t.type === 'string' && t.literal) || catenate) {
      if (catenate) {
        if (t.type !== 'list' || !t.items.length) throw bad('Expected CATENATE parts');
        checkParts(t.items, utf8);
      }
      items.push(catenate && t.type === 'list' ? { message: Buffer.alloc(0), parts: t.items, flags: flags ?? [], date } : { message: (t as { value: Buffer }).value, flags: flags ?? [], date });
      flags = undefined;
      date = undefined;
      catenate = false;
    } else if (t.type === 'atom' && t.value.toUpperCase() === 'CATENATE') {
      catenate = true;
    } else if (t.type === 'atom' && t.value.toUpperCase() === 'UTF8') {
      utf8Next = true;
    } else if (t.type === 'list' && !flags && !date) {
      flags = flagList(t).filter((f) => f !== '\\Recent');
    } else if (t.type !== 'list' && !date) {
      date = parseImapDate(tokenText(t) ?? '', true);
      if (!date) throw bad('Invalid date-time');
    } else throw bad('Invalid APPEND arguments');
  }
  if (!items.length || flags || date || catenate || utf8Next) throw bad('Expected message literal');
  return items;
}

/** RFC 4469 §5 cat-part: TEXT literal / URL astring, and RFC 6855 §4's UTF8 (literal8). */
function checkParts(parts: Token[], utf8: boolean): void {
  if (parts.length % 2) throw bad('Invalid CATENATE parts');
  for (let i = 0; i < parts.length; i += 2) {
    const kind = parts[i].type === 'atom' ? (parts[i] as { value: string }).value.toUpperCase() : '';
    const v = parts[i + 1];
    if (kind === 'UTF8') utf8Literal(v, utf8);
    else if (kind === 'TEXT' ? !(v.type === 'string' && v.literal) : kind !== 'URL' || tokenText(v) === undefined) throw bad('Invalid CATENATE part');
  }
}

/**
 * An IMAP URL of this server (RFC 5092): "/mailbox[;UIDVALIDITY=n]/;UID=n[/;SECTION=s][/;PARTIAL=o[.l]]", also with
 * an "imap://host" prefix. The part it names, read without setting \Seen; undefined when it does not resolve.
 */
async function urlData(session: ImapSession, url: string): Promise<Buffer | undefined> {
  const m = /^(?:imap:\/\/[^/]*)?\/([^;/]*(?:\/[^;/]+)*?)(?:;UIDVALIDITY=(\d+))?\/;UID=(\d+)(?:\/;SECTION=([^/;]*))?(?:\/;PARTIAL=(\d+(?:\.\d+)?))?$/i.exec(url);
  if (!m) return undefined;
  let name: string;
  try {
    name = decodeURIComponent(m[1]);
  } catch {
    return undefined;
  }
  if (name.toUpperCase() === 'INBOX') name = 'INBOX';
  try {
    const ref = session.resolve(name);
    const state = await session.deps.mailbox.openFolder(ref.owner, ref.folder);
    if (m[2] !== undefined && Number(m[2]) !== state.uidValidity) return undefined;
    const uid = Number(m[3]);
    if (!state.messages.some((x) => x.uid === uid)) return undefined;
    const raw = await session.deps.mailbox.readMessage(ref.owner, ref.folder, uid);
    const section = m[4] === undefined ? '' : decodeURIComponent(m[4]);
    const att = parseFetchAtt(`BODY.PEEK[${section}]${m[5] ? `<${m[5]}>` : ''}`);
    if (att.kind !== 'section') return undefined;
    return sectionData(raw, parseMime(raw), att.section);
  } catch {
    return undefined;
  }
}

/** Joins the parts of a CATENATE; an unresolvable URL is NO [BADURL] and nothing is stored (RFC 4469 §5). */
async function catenate(session: ImapSession, parts: Token[]): Promise<Buffer> {
  const out: Buffer[] = [];
  for (let i = 0; i < parts.length; i += 2) {
    const kind = (parts[i] as { value: string }).value.toUpperCase();
    const v = parts[i + 1];
    if (kind === 'TEXT') out.push((v as { value: Buffer }).value);
    else if (kind === 'UTF8') out.push(utf8Literal(v, true));
    else {
      const url = tokenText(v)!;
      const data = await urlData(session, url);
      if (!data) throw no(`Cannot use ${url}`, `BADURL ${url.replace(/[\]\r\n]/g, '')}`);
      out.push(data);
    }
  }
  return Buffer.concat(out);
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
    const name = mailboxName(cmd.args[0], session);
    const items = parseItems(cmd.args.slice(1), session.enabled.has('UTF8=ACCEPT'));
    const ref = session.resolve(name);
    if (items.some((i) => i.parts)) {
      // RFC 4469 §5: a missing target is TRYCREATE whatever the URLs say, so it is looked at first.
      await session.deps.mailbox.openFolder(ref.owner, ref.folder);
      for (const item of items) if (item.parts) item.message = await catenate(session, item.parts);
    }
    for (const item of items) {
      if (item.message.length > session.deps.appendLimit) throw no('Message too large', 'TOOBIG');
      if (item.message.length === 0) throw no('Empty message');
    }
    const uids: number[] = [];
    let uidValidity = 0;
    try {
      for (const item of items) {
        const result = await session.deps.mailbox.append(ref.owner, ref.folder, toCrlf(encodeBinaryParts(item.message)), item.flags, item.date);
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
