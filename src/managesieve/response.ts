/**
 * Server responses (RFC 5804 §1.2, §4): `OK` / `NO` / `BYE`, an optional response code in parentheses (§1.3),
 * an optional human-readable string. Strings go out quoted when they can (no CR, LF or NUL, short), else as a
 * literal `{N}` CRLF octets (literal-s2c: no '+').
 */

/** RFC 5804 §1.3 response codes this server sends. */
export type ResponseCode =
  | 'AUTH-TOO-WEAK'
  | 'ENCRYPT-NEEDED'
  | 'QUOTA'
  | 'QUOTA/MAXSCRIPTS'
  | 'QUOTA/MAXSIZE'
  | 'SASL'
  | 'TRYLATER'
  | 'ACTIVE'
  | 'NONEXISTENT'
  | 'ALREADYEXISTS'
  | 'WARNINGS'
  | `TAG ${string}`;

const QUOTABLE_MAX = 1024;

/** A string argument: quoted when safe, else a literal. */
export function sieveString(value: string | Buffer): Buffer {
  const buf = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
  if (buf.length <= QUOTABLE_MAX && !buf.includes(0x0d) && !buf.includes(0x0a) && !buf.includes(0x00)) {
    const escaped = buf.toString('utf8').replace(/[\\"]/g, (c) => `\\${c}`);
    return Buffer.from(`"${escaped}"`, 'utf8');
  }
  return Buffer.concat([Buffer.from(`{${buf.length}}\r\n`, 'latin1'), buf]);
}

/** One response line: `OK (CODE) "text"` and its CRLF. */
export function responseLine(kind: 'OK' | 'NO' | 'BYE', code?: ResponseCode, text?: string): Buffer {
  const parts: Buffer[] = [Buffer.from(kind, 'latin1')];
  if (code) parts.push(Buffer.from(` (${code})`, 'utf8'));
  if (text !== undefined && text !== '') parts.push(Buffer.from(' ', 'latin1'), sieveString(text));
  parts.push(Buffer.from('\r\n', 'latin1'));
  return Buffer.concat(parts);
}

/** A quoted or literal string inside a response code, e.g. `TAG "x"` (RFC 5804 §1.3 TAG). */
export function codeString(value: string): string {
  return sieveString(value).toString('utf8');
}
