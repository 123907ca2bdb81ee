/**
 * Forged Authentication-Results (RFC 8601 §5): a receiver "MUST remove" fields carrying its own authserv-id that
 * arrive with a message, or a sender could write `mx.corp.example; dkim=pass` and have our users' clients (and
 * SpamAssassin, which reads the field) believe we checked it. Done in the SMTP data hook on every listener, before
 * the filters run and whether or not the mail-auth stage checks the message: submission and trusted clients are not
 * checked, but a local user or a compromised printer can forge the field as well as anyone. Fields of other
 * authserv-ids are left alone (they record what other hosts found; RFC 8601 §5 leaves them to local policy).
 */
import { headerFields, headerSectionEnd } from './mime.js';

/** The authserv-id of an Authentication-Results value (RFC 8601 §2.2: `[CFWS] authserv-id ...`), lower case. */
export function authServId(value: string): string {
  let s = value.replace(/\r?\n/g, '');
  // Leading CFWS: spaces and (possibly nested) comments, RFC 5322 §3.2.2.
  for (;;) {
    s = s.replace(/^[ \t]+/, '');
    if (s[0] !== '(') break;
    let depth = 0;
    let i = 0;
    for (; i < s.length; i++) {
      if (s[i] === '\\') i++;
      else if (s[i] === '(') depth++;
      else if (s[i] === ')' && --depth === 0) break;
    }
    s = s.slice(i + 1);
  }
  // authserv-id is a `value` (RFC 2045 token or quoted-string).
  const quoted = /^"((?:[^"\\]|\\.)*)"/.exec(s);
  const id = quoted ? quoted[1].replace(/\\(.)/g, '$1') : (/^[^\s;()"]*/.exec(s)?.[0] ?? '');
  return id.toLowerCase().replace(/\.$/, '');
}

/** `message` without the Authentication-Results fields whose authserv-id is `hostname`, and how many there were. */
export function removeOurAuthResults(message: Buffer, hostname: string): { message: Buffer; removed: number } {
  const ours = hostname.toLowerCase().replace(/\.$/, '');
  const end = headerSectionEnd(message);
  const drop = headerFields(message, end).filter(
    (f) => f.name.toLowerCase() === 'authentication-results' && authServId(message.subarray(f.valueStart, f.end).toString('latin1')) === ours,
  );
  if (!drop.length) return { message, removed: 0 };
  const parts: Buffer[] = [];
  let pos = 0;
  for (const f of drop) {
    parts.push(message.subarray(pos, f.start));
    pos = f.end;
  }
  parts.push(message.subarray(pos));
  return { message: Buffer.concat(parts), removed: drop.length };
}
