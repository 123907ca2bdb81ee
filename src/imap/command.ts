/**
 * What a command module is (STYLE.md "One file per command"): the states it may run in, and a handler that talks to
 * the store through the connection's narrow session API. A handler returns the tagged completion, or throws
 * `ImapError` for NO/BAD.
 */
import type { ImapSession } from './connection.js';
import type { ParsedCommand, Token } from './parser.js';
import { parseSequenceSet, tokenText, type SeqRange } from './parser.js';
import { decodeMutf7 } from '../store/mutf7.js';

/** The shared namespace (RFC 2342): "Shared/<group>" is a group's INBOX, "Shared/<group>/<folder>" its folders. */
export const SHARED_PREFIX = 'Shared';

/** Whether two owners are the same mailbox (logins and group names are case-insensitive). */
export function sameOwner(a: import('../store/types.js').MailboxOwner, b: import('../store/types.js').MailboxOwner): boolean {
  if (a.kind === 'user' && b.kind === 'user') return a.login.toLowerCase() === b.login.toLowerCase();
  return a.kind === 'shared' && b.kind === 'shared' && a.group.toLowerCase() === b.group.toLowerCase();
}

export type ImapState = 'not-authenticated' | 'authenticated' | 'selected' | 'logout';

export interface Completion {
  status?: 'OK' | 'NO' | 'BAD';
  /** Response code without brackets, e.g. 'READ-WRITE', 'APPENDUID 1 5'. */
  code?: string;
  text?: string;
  /** The handler already sent the tagged response (STARTTLS answers before its handshake). */
  sent?: boolean;
}

export interface ImapCommand {
  /** Command names this module answers (SELECT and EXAMINE share one). */
  names: string[];
  states: ImapState[];
  /** Whether the `UID` prefix is allowed (COPY, FETCH, MOVE, SEARCH, STORE, EXPUNGE). */
  uid?: boolean;
  handle(session: ImapSession, cmd: ParsedCommand): Promise<Completion | void>;
}

export class ImapError extends Error {
  constructor(
    readonly status: 'NO' | 'BAD',
    text: string,
    readonly code?: string,
  ) {
    super(text);
    this.name = 'ImapError';
  }
}

export function bad(text: string, code?: string): ImapError {
  return new ImapError('BAD', text, code);
}

export function no(text: string, code?: string): ImapError {
  return new ImapError('NO', text, code);
}

/** Argument count check: exactly `n`, or between `min` and `max`. */
export function expectArgs(cmd: ParsedCommand, min: number, max = min): void {
  if (cmd.args.length < min || cmd.args.length > max) throw bad(`Wrong number of arguments for ${cmd.command}`);
}

/** An astring argument (atom, quoted or literal). */
export function astring(t: Token | undefined, what: string): string {
  const s = tokenText(t);
  if (s === undefined) throw bad(`Expected ${what}`);
  return s;
}

/** What decides how a session's mailbox names look on the wire (ImapSession.utf8). */
export interface NameMode {
  utf8: boolean;
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * A mailbox name or LIST pattern from the wire, as the client wrote it. With UTF-8 names (RFC 6855 §3, RFC 9051
 * §5.1) a string that is not valid UTF-8 is BAD: it cannot name any mailbox, and decoding it loosely would let two
 * byte strings reach the same folder.
 */
export function wireText(t: Token | undefined, what: string, mode?: NameMode): string {
  if (mode?.utf8 && t?.type === 'string') {
    try {
      return strictUtf8.decode(t.value);
    } catch {
      throw bad(`${what[0].toUpperCase()}${what.slice(1)} is not valid UTF-8`);
    }
  }
  return astring(t, what);
}

/**
 * A mailbox name or LIST pattern from the wire, decoded. IMAP4rev1 names are modified UTF-7 (RFC 3501 §5.1.3); a
 * name with 8-bit characters is taken as UTF-8, as sent by clients that skip the encoding; one that is not valid
 * modified UTF-7 is refused, so that no two wire names reach the same folder. UTF-8 names (RFC 6855 §3, RFC 9051
 * §5.1) are taken as they are, in Unicode normalization form C: "&" is then an ordinary character, and a
 * denormalized name opens the same mailbox as its NFC form (RFC 9051 §5.1).
 */
export function wireMailboxName(raw: string, mode?: NameMode): string {
  if (mode?.utf8) return raw.normalize('NFC');
  if (/[^\x00-\x7f]/.test(raw)) return raw;
  try {
    return decodeMutf7(raw);
  } catch {
    // A name no folder can have, like any other unknown name: NO, as Dovecot answers, and the session goes on.
    throw no('Mailbox name is not valid modified UTF-7', 'CANNOT');
  }
}

/** Whether a UTF-8 name as written is not in NFC: RFC 9051 §6.3.2, §6.3.4, §6.3.6 then answer LIST with OLDNAME. */
export function denormalized(t: Token | undefined, mode: NameMode): string | undefined {
  if (!mode.utf8) return undefined;
  const raw = wireText(t, 'mailbox name', mode);
  return raw === raw.normalize('NFC') ? undefined : raw.replace(/\/+$/, '');
}

/** A mailbox name argument: INBOX is case-insensitive (RFC 3501 §5.1), trailing separators are dropped. */
export function mailboxName(t: Token | undefined, mode?: NameMode): string {
  const raw = wireMailboxName(wireText(t, 'mailbox name', mode), mode);
  const name = raw.replace(/\/+$/, '');
  if (name.toUpperCase() === 'INBOX') return 'INBOX';
  if (/^INBOX\//i.test(name)) return 'INBOX' + name.slice(5);
  return name;
}

/** A flag list: a parenthesized list or a single flag atom (STORE accepts both). */
export function flagList(t: Token | undefined): string[] {
  if (!t) throw bad('Expected flags');
  const items = t.type === 'list' ? t.items : [t];
  const out: string[] = [];
  for (const i of items) {
    if (i.type !== 'atom' || !/^\\?[^\s()\\{"%*\]]+$/.test(i.value)) throw bad('Invalid flag');
    out.push(normalizeFlag(i.value));
  }
  return out;
}

const SYSTEM_FLAGS = ['\\Seen', '\\Answered', '\\Flagged', '\\Deleted', '\\Draft', '\\Recent'];

/** System flags in their canonical case; keywords as given. */
export function normalizeFlag(f: string): string {
  if (f.startsWith('\\')) {
    const sys = SYSTEM_FLAGS.find((s) => s.toLowerCase() === f.toLowerCase());
    if (!sys) throw bad(`Unknown system flag ${f}`);
    return sys;
  }
  return f;
}

export const PERMANENT_FLAGS = ['\\Answered', '\\Flagged', '\\Deleted', '\\Seen', '\\Draft'];

/** Messages of the selected folder matched by a sequence set or UID set (RFC 3501 §9 sequence-set). */
export function resolveSet(session: ImapSession, text: string, uid: boolean): { seq: number; meta: import('../store/mailbox.js').MessageMeta }[] {
  const sel = session.selected;
  if (!sel) throw bad('No mailbox selected');
  const msgs = sel.messages;
  // RFC 5182 §2.1: "$" is the saved search result; expunged messages have left it with the view.
  if (text === '$') return msgs.flatMap((meta, i) => (sel.saved.has(meta.uid) ? [{ seq: i + 1, meta }] : []));
  let set: SeqRange[];
  try {
    set = parseSequenceSet(text);
  } catch {
    throw bad('Invalid sequence set');
  }
  const out: { seq: number; meta: import('../store/mailbox.js').MessageMeta }[] = [];
  const n = msgs.length;
  if (!n) return out;
  // The set's ranges as index ranges of the view, sorted and merged, then walked once: the view is in UID order
  // (RFC 3501 §2.3.1.1: UIDs ascend with sequence numbers), so a UID range is found by binary search. Testing every
  // message of the view against the set cost a 100,000-message folder's length for FETCH 1:20.
  const max = uid ? msgs[n - 1].uid : n;
  const spans: [number, number][] = [];
  for (const [a0, b0] of set) {
    const a = a0 === Infinity ? max : a0;
    const b = b0 === Infinity ? max : b0;
    const lo = Math.min(a, b);
    const hi = Math.max(a, b);
    const from = uid ? firstAtLeast(msgs, lo) : lo - 1;
    const to = uid ? firstAtLeast(msgs, hi + 1) - 1 : Math.min(hi, n) - 1;
    if (from <= to && from < n) spans.push([from, to]);
  }
  spans.sort((x, y) => x[0] - y[0]);
  let next = 0;
  for (const [from, to] of spans) {
    for (let i = Math.max(from, next); i <= to; i++) out.push({ seq: i + 1, meta: msgs[i] });
    next = Math.max(next, to + 1);
  }
  return out;
}

/** The index of the first message whose UID is at least `uid` (the view's length when none is). */
function firstAtLeast(msgs: readonly { uid: number }[], uid: number): number {
  let lo = 0;
  let hi = msgs.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (msgs[mid].uid < uid) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
