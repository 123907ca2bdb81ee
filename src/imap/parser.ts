/**
 * The IMAP command reader and tokenizer (RFC 3501 §9 grammar, RFC 7888 LITERAL+).
 *
 * Two layers. `CommandReader` cuts the byte stream into frames: one command with its literals inline, exactly as
 * sent. It asks the connection about every literal before reading it, so a literal that is too large is refused
 * before the `+` continuation (RFC 3501 §7.5, RFC 7859 APPENDLIMIT) and never buffered. `parseCommand` then turns a
 * frame into a tag, a command name and argument tokens.
 */
import { parseBinaryAtt, type BinaryAtt } from './binary.js';

/** RFC 7162 §4 recommends at least 8192 octets; 64 KiB leaves room for long UID sets from clients like Thunderbird. */
export const MAX_LINE = 64 * 1024;
/** Literal limit for every command except APPEND (whose limit is APPENDLIMIT). */
export const MAX_LITERAL = 64 * 1024;

export type Token =
  | { type: 'atom'; value: string }
  /** Quoted string or literal; literals keep their bytes (APPEND). */
  | { type: 'string'; value: Buffer; literal: boolean }
  | { type: 'list'; items: Token[] };

export interface ParsedCommand {
  tag: string;
  /** Upper-cased command name; `UID FETCH` is `FETCH` with `uid: true`. */
  command: string;
  uid: boolean;
  args: Token[];
}

export class ParseError extends Error {
  constructor(
    message: string,
    readonly tag = '*',
  ) {
    super(message);
    this.name = 'ParseError';
  }
}

// ---- Reader -----------------------------------------------------------------------------------------------------

export type LiteralDecision = { ok: true } | { ok: false; status: 'BAD' | 'NO'; code?: string; text: string };

export interface ReaderHooks {
  /** A complete frame (command with literals inline, or a continuation line). Return 'stop' to discard what follows. */
  frame(data: Buffer): 'stop' | void;
  /**
   * A literal is announced. `head` is the command so far. The reader sends nothing itself: for a synchronizing
   * literal the connection writes `+ Ready` when it accepts.
   */
  literal(head: Buffer, size: number, nonSync: boolean): LiteralDecision;
  /** The literal was refused: the command is dropped; for a non-synchronizing one the connection must close. */
  refused(head: Buffer, decision: Exclude<LiteralDecision, { ok: true }>, nonSync: boolean): void;
  /** A line over MAX_LINE; it is discarded up to its end. */
  tooLong(head: Buffer): void;
}

const LITERAL_AT_END = /\{(\d{1,20})(\+?)\}\r?\n$/;

export class CommandReader {
  private buf: Buffer = Buffer.alloc(0);
  /** Parts of the current frame already read (lines and literals). */
  private parts: Buffer[] = [];
  private partsLen = 0;
  private literalLeft = 0;
  private skippingLine = false;
  private stopped = false;

  constructor(private readonly hooks: ReaderHooks) {}

  /** Forget everything buffered and start again (after STARTTLS). */
  reset(): void {
    this.buf = Buffer.alloc(0);
    this.parts = [];
    this.partsLen = 0;
    this.literalLeft = 0;
    this.skippingLine = false;
    this.stopped = false;
  }

  /** Nothing is buffered: no partial line, literal or skipped line (a session may move to another process). */
  get empty(): boolean {
    return this.buf.length === 0 && this.parts.length === 0 && this.literalLeft === 0 && !this.skippingLine && !this.stopped;
  }

  push(chunk: Buffer): void {
    if (this.stopped) return;
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    while (this.buf.length && !this.stopped) {
      if (this.literalLeft > 0) {
        const n = Math.min(this.literalLeft, this.buf.length);
        this.add(this.buf.subarray(0, n));
        this.buf = this.buf.subarray(n);
        this.literalLeft -= n;
        continue;
      }
      const nl = this.buf.indexOf(0x0a);
      if (nl < 0) {
        if (this.buf.length > MAX_LINE) {
          // Over-long line: drop what we have and skip to its end.
          if (!this.skippingLine) this.hooks.tooLong(Buffer.concat([...this.parts, this.buf.subarray(0, 200)]));
          this.skippingLine = true;
          this.buf = Buffer.alloc(0);
          this.parts = [];
          this.partsLen = 0;
        }
        return;
      }
      const line = this.buf.subarray(0, nl + 1);
      this.buf = this.buf.subarray(nl + 1);
      if (this.skippingLine) {
        this.skippingLine = false;
        continue;
      }
      if (line.length > MAX_LINE) {
        this.hooks.tooLong(Buffer.concat([...this.parts, line]));
        this.parts = [];
        this.partsLen = 0;
        continue;
      }
      this.add(line);
      const m = LITERAL_AT_END.exec(line.toString('latin1'));
      if (m) {
        const size = Number(m[1]);
        const nonSync = m[2] === '+';
        const head = this.head();
        const decision = Number.isSafeInteger(size) ? this.hooks.literal(head, size, nonSync) : ({ ok: false, status: 'BAD', text: 'Literal too large' } as const);
        if (!decision.ok) {
          this.parts = [];
          this.partsLen = 0;
          if (nonSync) this.stopped = true;
          this.hooks.refused(head, decision, nonSync);
          continue;
        }
        this.literalLeft = size;
        if (size === 0) continue;
        continue;
      }
      const frame = this.head();
      this.parts = [];
      this.partsLen = 0;
      if (this.hooks.frame(frame) === 'stop') {
        this.stopped = true;
        this.buf = Buffer.alloc(0);
      }
    }
  }

  private add(b: Buffer) {
    this.parts.push(Buffer.from(b));
    this.partsLen += b.length;
  }

  private head(): Buffer {
    return this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts, this.partsLen);
  }
}

/** Tag and command name of a frame, without parsing its arguments (for literal limits and logging). */
export function peekCommand(frame: Buffer): { tag: string; command: string } {
  const text = frame.subarray(0, 200).toString('latin1');
  const m = /^([^\s(){%*"\\\]]+) +([A-Za-z]+)(?: +([A-Za-z]+))?/.exec(text);
  if (!m) return { tag: '*', command: '' };
  const command = m[2].toUpperCase();
  return { tag: m[1], command: command === 'UID' && m[3] ? m[3].toUpperCase() : command };
}

// ---- Tokenizer --------------------------------------------------------------------------------------------------

class Cursor {
  pos = 0;
  constructor(readonly buf: Buffer) {}
  peek(): number {
    return this.pos < this.buf.length ? this.buf[this.pos] : -1;
  }
  atEnd(): boolean {
    return this.pos >= this.buf.length;
  }
}

const SP = 0x20;
const CR = 0x0d;
const LF = 0x0a;

function isAtomChar(c: number): boolean {
  // RFC 3501 ATOM-CHAR minus list-wildcards and resp-specials, which we accept where they are used (LIST patterns,
  // sequence sets, flags, section brackets): everything but SP, CTL, '(' ')' '{' and DQUOTE.
  return c > 0x20 && c < 0x7f && c !== 0x28 && c !== 0x29 && c !== 0x7b && c !== 0x22;
}

/** Parses one frame (CRLF-terminated, literals inline). Throws ParseError with the tag when it is known. */
export function parseCommand(frame: Buffer): ParsedCommand {
  let end = frame.length;
  if (end && frame[end - 1] === LF) end--;
  if (end && frame[end - 1] === CR) end--;
  const cur = new Cursor(frame.subarray(0, end));
  const tag = readAtom(cur, '*');
  if (!tag || tag.includes('+') || tag.includes('*') || tag.includes('%')) throw new ParseError('Invalid tag');
  if (cur.peek() !== SP) throw new ParseError('Missing command', tag);
  cur.pos++;
  let command = readAtom(cur, tag).toUpperCase();
  if (!/^[A-Z]+$/.test(command)) throw new ParseError('Invalid command', tag);
  let uid = false;
  if (command === 'UID') {
    if (cur.peek() !== SP) throw new ParseError('Missing UID command', tag);
    cur.pos++;
    command = readAtom(cur, tag).toUpperCase();
    uid = true;
  }
  const args: Token[] = [];
  while (!cur.atEnd()) {
    if (cur.peek() !== SP) throw new ParseError('Expected space', tag);
    cur.pos++;
    args.push(readToken(cur, tag, 0));
  }
  return { tag, command, uid, args };
}

function readToken(cur: Cursor, tag: string, depth: number): Token {
  const c = cur.peek();
  if (c === 0x28) return readList(cur, tag, depth);
  if (c === 0x22) return { type: 'string', value: readQuoted(cur, tag), literal: false };
  if (c === 0x7b) return { type: 'string', value: readLiteral(cur, tag), literal: true };
  if (c === 0x7e && cur.buf[cur.pos + 1] === 0x7b) {
    // RFC 3516 literal8 "~{n}": treated as a literal (APPEND of binary content).
    cur.pos++;
    return { type: 'string', value: readLiteral(cur, tag), literal: true };
  }
  const value = readAtom(cur, tag);
  if (!value) throw new ParseError('Unexpected character', tag);
  return { type: 'atom', value };
}

function readList(cur: Cursor, tag: string, depth: number): Token {
  if (depth > 32) throw new ParseError('Lists nested too deep', tag);
  cur.pos++; // '('
  const items: Token[] = [];
  for (;;) {
    const c = cur.peek();
    if (c === -1) throw new ParseError('Unterminated list', tag);
    if (c === 0x29) {
      cur.pos++;
      return { type: 'list', items };
    }
    if (items.length) {
      if (c !== SP) throw new ParseError('Expected space in list', tag);
      cur.pos++;
    }
    items.push(readToken(cur, tag, depth + 1));
  }
}

function readQuoted(cur: Cursor, tag: string): Buffer {
  cur.pos++; // DQUOTE
  const out: number[] = [];
  for (;;) {
    const c = cur.peek();
    if (c === -1 || c === CR || c === LF) throw new ParseError('Unterminated quoted string', tag);
    cur.pos++;
    if (c === 0x22) return Buffer.from(out);
    if (c === 0x5c) {
      const n = cur.peek();
      // RFC 3501 quoted-specials: only DQUOTE and backslash may be escaped.
      if (n !== 0x22 && n !== 0x5c) throw new ParseError('Invalid escape in quoted string', tag);
      cur.pos++;
      out.push(n);
      continue;
    }
    out.push(c);
  }
}

function readLiteral(cur: Cursor, tag: string): Buffer {
  const close = cur.buf.indexOf(0x7d, cur.pos);
  if (close < 0) throw new ParseError('Invalid literal', tag);
  const spec = cur.buf.subarray(cur.pos + 1, close).toString('latin1');
  const m = /^(\d+)\+?$/.exec(spec);
  if (!m) throw new ParseError('Invalid literal size', tag);
  let p = close + 1;
  if (cur.buf[p] === CR) p++;
  if (cur.buf[p] !== LF) throw new ParseError('Literal must end the line', tag);
  p++;
  const size = Number(m[1]);
  if (p + size > cur.buf.length) throw new ParseError('Truncated literal', tag);
  cur.pos = p + size;
  return cur.buf.subarray(p, p + size);
}

/** FETCH items whose "[...]" is a section that may hold spaces and parentheses (RFC 3501 §6.4.5, RFC 3516). */
const SECTION_ITEM = /^(?:BODY|BODY\.PEEK|BINARY|BINARY\.PEEK|BINARY\.SIZE)$/i;

function readAtom(cur: Cursor, tag: string): string {
  const start = cur.pos;
  for (;;) {
    const c = cur.peek();
    // Elsewhere '[' is an ordinary ATOM-CHAR (RFC 3501 §9: only ']' is a resp-special), e.g. in a mailbox name.
    if (c === 0x5b && SECTION_ITEM.test(cur.buf.subarray(start, cur.pos).toString('latin1'))) {
      // A section: BODY[HEADER.FIELDS (From To)] keeps its brackets, spaces and parentheses in the atom.
      const close = cur.buf.indexOf(0x5d, cur.pos);
      if (close < 0) throw new ParseError('Unterminated section', tag);
      const inner = cur.buf.subarray(cur.pos, close);
      if (inner.includes(CR) || inner.includes(LF) || inner.includes(0x7b)) throw new ParseError('Invalid section', tag);
      cur.pos = close + 1;
      continue;
    }
    if (c === -1 || !isAtomChar(c)) break;
    cur.pos++;
  }
  return cur.buf.subarray(start, cur.pos).toString('latin1');
}

// ---- Sequence sets ----------------------------------------------------------------------------------------------

/** `*` is represented as Infinity and resolved against the largest number in use. */
export type SeqRange = [number, number];

export function parseSequenceSet(text: string): SeqRange[] {
  if (!text) throw new Error('empty sequence set');
  const out: SeqRange[] = [];
  for (const part of text.split(',')) {
    const m = /^(\d+|\*)(?::(\d+|\*))?$/.exec(part);
    if (!m) throw new Error(`invalid sequence set: ${text}`);
    const a = m[1] === '*' ? Infinity : Number(m[1]);
    const b = m[2] === undefined ? a : m[2] === '*' ? Infinity : Number(m[2]);
    // RFC 3501 §9 seq-number: nz-number (0 is not valid), 32 bits.
    if (a === 0 || b === 0 || (Number.isFinite(a) && a > 0xffffffff) || (Number.isFinite(b) && b > 0xffffffff)) throw new Error(`invalid sequence number in ${text}`);
    out.push(a <= b ? [a, b] : [b, a]);
  }
  return out;
}

/** Membership test with `*` meaning `max` (RFC 3501 §9: "*" is the largest number in use). */
export function inSequenceSet(set: SeqRange[], n: number, max: number): boolean {
  for (const [a0, b0] of set) {
    const a = a0 === Infinity ? max : a0;
    const b = b0 === Infinity ? max : b0;
    if (n >= Math.min(a, b) && n <= Math.max(a, b)) return true;
  }
  return false;
}

/** Compact form of a sorted list of numbers: 1,2,3,7 → "1:3,7" (COPYUID, APPENDUID, SEARCH results stay short). */
export function formatSequenceSet(nums: number[]): string {
  const parts: string[] = [];
  let i = 0;
  while (i < nums.length) {
    let j = i;
    while (j + 1 < nums.length && nums[j + 1] === nums[j] + 1) j++;
    parts.push(i === j ? String(nums[i]) : `${nums[i]}:${nums[j]}`);
    i = j + 1;
  }
  return parts.join(',');
}

// ---- FETCH attributes -------------------------------------------------------------------------------------------

export interface BodySection {
  /** Part path, e.g. [1, 2] for "1.2"; empty for the whole message. */
  path: number[];
  /** '', 'HEADER', 'TEXT', 'MIME', 'HEADER.FIELDS', 'HEADER.FIELDS.NOT'. */
  specifier: '' | 'HEADER' | 'TEXT' | 'MIME' | 'HEADER.FIELDS' | 'HEADER.FIELDS.NOT';
  fields?: string[];
  partial?: { start: number; length?: number };
  peek: boolean;
  /** The section as the response names it: "BODY[1.HEADER.FIELDS (FROM)]<0>". */
  responseName: string;
}

export type FetchAtt =
  | { kind: 'simple'; name: 'FLAGS' | 'INTERNALDATE' | 'RFC822.SIZE' | 'UID' | 'ENVELOPE' | 'BODYSTRUCTURE' | 'BODY' | 'RFC822' | 'RFC822.HEADER' | 'RFC822.TEXT' | 'PREVIEW' | 'SAVEDATE' | 'MODSEQ' }
  | { kind: 'section'; section: BodySection }
  | BinaryAtt;

// SAVEDATE: RFC 8514 §4.2. MODSEQ: RFC 7162 §3.1.4.2.
const SIMPLE_ATTS = new Set(['FLAGS', 'INTERNALDATE', 'RFC822.SIZE', 'UID', 'ENVELOPE', 'BODYSTRUCTURE', 'BODY', 'RFC822', 'RFC822.HEADER', 'RFC822.TEXT', 'PREVIEW', 'SAVEDATE', 'MODSEQ']);

/** RFC 8970 §3.2: PREVIEW may be followed by its modifiers, "(LAZY)"; we always compute it, so LAZY changes nothing. */
function previewModifiers(t: Token): void {
  if (t.type !== 'list' || !t.items.length || t.items.some((i) => i.type !== 'atom' || i.value.toUpperCase() !== 'LAZY')) throw new Error('invalid PREVIEW modifiers');
}

/** Parses the FETCH argument: a macro (ALL, FAST, FULL), one attribute, or a list of attributes (RFC 3501 §6.4.5). */
export function parseFetchAtts(arg: Token, modifiers?: Token): FetchAtt[] {
  const atoms: string[] = [];
  if (arg.type === 'atom') {
    atoms.push(arg.value);
    if (modifiers) {
      if (arg.value.toUpperCase() !== 'PREVIEW') throw new Error('invalid fetch attribute');
      previewModifiers(modifiers);
    }
  } else if (arg.type === 'list') {
    for (const t of arg.items) {
      if (t.type === 'list' && atoms.length && atoms[atoms.length - 1].toUpperCase() === 'PREVIEW') {
        previewModifiers(t);
        continue;
      }
      if (t.type !== 'atom') throw new Error('invalid fetch attribute');
      atoms.push(t.value);
    }
  } else throw new Error('invalid fetch attribute');
  if (arg.type === 'atom') {
    const macro = arg.value.toUpperCase();
    if (macro === 'ALL') return ['FLAGS', 'INTERNALDATE', 'RFC822.SIZE', 'ENVELOPE'].map(simple);
    if (macro === 'FAST') return ['FLAGS', 'INTERNALDATE', 'RFC822.SIZE'].map(simple);
    if (macro === 'FULL') return ['FLAGS', 'INTERNALDATE', 'RFC822.SIZE', 'ENVELOPE', 'BODY'].map(simple);
  }
  return atoms.map(parseFetchAtt);
}

function simple(name: string): FetchAtt {
  return { kind: 'simple', name: name as Extract<FetchAtt, { kind: 'simple' }>['name'] };
}

export function parseFetchAtt(text: string): FetchAtt {
  const upper = text.toUpperCase();
  if (SIMPLE_ATTS.has(upper)) return simple(upper);
  if (upper.startsWith('BINARY')) return parseBinaryAtt(text);
  const m = /^(BODY(?:\.PEEK)?|BINARY(?:\.PEEK)?)\[([^\]]*)\](?:<(\d+)(?:\.(\d+))?>)?$/i.exec(text);
  if (!m || m[1].toUpperCase().startsWith('BINARY')) throw new Error(`invalid fetch attribute: ${text}`);
  const peek = m[1].toUpperCase() === 'BODY.PEEK';
  const section = parseSection(m[2]);
  let partial: BodySection['partial'];
  if (m[3] !== undefined) {
    partial = { start: Number(m[3]) };
    if (m[4] !== undefined) {
      partial.length = Number(m[4]);
      if (partial.length === 0) throw new Error('partial length must be non-zero');
    }
  }
  const fieldsText = section.fields ? ` (${section.fields.join(' ')})` : '';
  const name = `${[section.path.join('.'), section.specifier].filter(Boolean).join('.')}${fieldsText}`;
  return {
    kind: 'section',
    section: { ...section, partial, peek, responseName: `BODY[${name}]${partial ? `<${partial.start}>` : ''}` },
  };
}

function parseSection(text: string): Pick<BodySection, 'path' | 'specifier' | 'fields'> {
  const m = /^((?:\d+\.)*\d+)?(?:\.?(HEADER\.FIELDS\.NOT|HEADER\.FIELDS|HEADER|TEXT|MIME))?(?: \(([^()]*)\))?$/i.exec(text);
  if (!m) throw new Error(`invalid section: ${text}`);
  const path = m[1] ? m[1].split('.').map(Number) : [];
  if (path.some((n) => n === 0)) throw new Error('part numbers start at 1');
  if (m[1] && m[2] === undefined && text.length !== m[1].length) throw new Error(`invalid section: ${text}`);
  if (!m[1] && m[2] && text.toUpperCase().startsWith('.')) throw new Error(`invalid section: ${text}`);
  const specifier = (m[2]?.toUpperCase() ?? '') as BodySection['specifier'];
  if (specifier === 'MIME' && !path.length) throw new Error('MIME needs a part number');
  const isFields = specifier === 'HEADER.FIELDS' || specifier === 'HEADER.FIELDS.NOT';
  if (isFields !== (m[3] !== undefined)) throw new Error(`invalid section: ${text}`);
  const fields = isFields
    ? m[3]
        .trim()
        .split(/ +/)
        .map((f) => f.replace(/^"(.*)"$/, '$1').toUpperCase())
    : undefined;
  if (fields && (fields.length === 0 || fields.some((f) => !/^[\x21-\x39\x3b-\x7e]+$/.test(f)))) throw new Error('invalid header field list');
  return { path, specifier, fields };
}

// ---- Helpers for command modules ------------------------------------------------------------------------------

/** An astring / string argument as text (UTF-8). */
export function tokenText(t: Token | undefined): string | undefined {
  if (!t) return undefined;
  if (t.type === 'atom') return t.value;
  if (t.type === 'string') return t.value.toString('utf8');
  return undefined;
}
