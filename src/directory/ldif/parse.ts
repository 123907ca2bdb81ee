/**
 * A small LDIF reader (RFC 2849) for AD-shaped exports: folded lines, comments, `::` base64 values and
 * `:<` file references (refused: a fixture must be self-contained). Change records are not supported; an
 * LDIF exported from AD (ldifde, ldapsearch -LLL) is a list of content records.
 */
import type { RawEntry } from '../mapping.js';

export class LdifError extends Error {}

export function parseLdif(text: string): RawEntry[] {
  const entries: RawEntry[] = [];
  // RFC 2849: a line starting with a single space continues the previous one.
  const lines: string[] = [];
  for (const raw of text.replace(/\r\n/g, '\n').split('\n')) {
    if (raw.startsWith(' ') && lines.length > 0 && lines[lines.length - 1] !== '') {
      lines[lines.length - 1] += raw.slice(1);
    } else {
      lines.push(raw);
    }
  }
  let current: RawEntry | null = null;
  let lineNo = 0;
  const flush = () => {
    if (current) entries.push(current);
    current = null;
  };
  for (const line of lines) {
    lineNo++;
    if (line === '') {
      flush();
      continue;
    }
    if (line.startsWith('#')) continue;
    const m = /^([A-Za-z0-9][A-Za-z0-9;.-]*)(::?|:<)\s?(.*)$/.exec(line);
    if (!m) throw new LdifError(`LDIF line ${lineNo}: cannot parse "${line.slice(0, 60)}"`);
    const [, name, sep, rest] = m;
    if (sep === ':<') throw new LdifError(`LDIF line ${lineNo}: URL values are not supported`);
    const bytes = sep === '::' ? Buffer.from(rest.trim(), 'base64') : Buffer.from(rest, 'utf8');
    const key = name.toLowerCase();
    if (key === 'version' && !current) continue;
    if (key === 'dn') {
      flush();
      current = { dn: bytes.toString('utf8'), attrs: {}, binary: {} };
      continue;
    }
    if (!current) throw new LdifError(`LDIF line ${lineNo}: attribute before any dn`);
    if (key === 'changetype') throw new LdifError(`LDIF line ${lineNo}: change records are not supported`);
    (current.attrs[key] ??= []).push(bytes.toString('utf8'));
    (current.binary[key] ??= []).push(bytes);
  }
  flush();
  return entries;
}
