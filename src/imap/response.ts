/**
 * Serialising response data (RFC 3501 §4): strings go quoted when they are short, 7-bit and free of CR/LF, and as
 * literals otherwise, so a header with raw 8-bit bytes or a quote never breaks the response syntax.
 */
import { encodeMutf7 } from '../store/mutf7.js';

/** A value in a response: a raw atom, NIL (null), a number, a string (quoted or literal), or a list. */
export type Value = null | number | { atom: string } | string | Buffer | Value[];

export function atom(s: string): { atom: string } {
  return { atom: s };
}

/** `utf8`: 8-bit (UTF-8) bytes may go quoted, which RFC 6855 §3 and RFC 9051 §4.3 allow once the client enabled it. */
export function encodeString(s: string | Buffer, utf8 = false): Buffer {
  const buf = typeof s === 'string' ? Buffer.from(s, 'utf8') : s;
  let simple = buf.length < 1024;
  if (simple) {
    for (const c of buf) {
      if (c === 0x0d || c === 0x0a || c === 0 || (c > 0x7f && !utf8)) {
        simple = false;
        break;
      }
    }
  }
  if (simple) return Buffer.from(`"${buf.toString('latin1').replace(/[\\"]/g, (c) => '\\' + c)}"`, 'latin1');
  return Buffer.concat([Buffer.from(`{${buf.length}}\r\n`), buf]);
}

export function encode(v: Value): Buffer {
  if (v === null) return Buffer.from('NIL');
  if (typeof v === 'number') return Buffer.from(String(v));
  if (typeof v === 'string' || Buffer.isBuffer(v)) return encodeString(v);
  if (Array.isArray(v)) {
    const parts: Buffer[] = [Buffer.from('(')];
    v.forEach((item, i) => {
      if (i) parts.push(Buffer.from(' '));
      parts.push(encode(item));
    });
    parts.push(Buffer.from(')'));
    return Buffer.concat(parts);
  }
  return Buffer.from(v.atom, 'latin1');
}

/**
 * A mailbox name as an astring: modified UTF-7 for IMAP4rev1 (RFC 3501 §5.1.3), UTF-8 once the session enabled
 * UTF8=ACCEPT (RFC 6855 §3) or IMAP4rev2 (RFC 9051 §5.1).
 */
export function encodeMailbox(name: string, mode?: { utf8: boolean }): Buffer {
  return mode?.utf8 ? encodeString(name, true) : encodeString(encodeMutf7(name));
}

/** RFC 3501 date-time: "17-Jul-1996 02:44:25 -0700" (we answer in UTC). */
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
export function formatInternalDate(d: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${String(d.getUTCDate()).padStart(2, ' ')}-${MONTHS[d.getUTCMonth()]}-${d.getUTCFullYear()} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} +0000`;
}

/** Parses RFC 3501 date-time (APPEND) or date (SEARCH); returns undefined when invalid. */
export function parseImapDate(s: string, withTime: boolean): Date | undefined {
  const m = withTime
    ? /^ ?(\d{1,2})-([A-Za-z]{3})-(\d{4}) (\d{2}):(\d{2}):(\d{2}) ([+-])(\d{2})(\d{2})$/.exec(s)
    : /^(\d{1,2})-([A-Za-z]{3})-(\d{4})$/.exec(s);
  if (!m) return undefined;
  const month = MONTHS.findIndex((x) => x.toLowerCase() === m[2].toLowerCase());
  if (month < 0) return undefined;
  const day = Number(m[1]);
  if (day < 1 || day > 31) return undefined;
  if (!withTime) return new Date(Date.UTC(Number(m[3]), month, day));
  const offset = (m[7] === '-' ? -1 : 1) * (Number(m[8]) * 60 + Number(m[9]));
  const t = Date.UTC(Number(m[3]), month, day, Number(m[4]), Number(m[5]), Number(m[6])) - offset * 60_000;
  return new Date(t);
}
