/** The Message-ID a trace is searched by (RFC 5322 §3.6.4), read from the header section as received. */
import { headerFields, headerSectionEnd } from '../filters/mime.js';

/** The first Message-ID field's msg-id without angle brackets, unfolded; undefined when there is none. */
export function messageIdOf(message: Buffer): string | undefined {
  const end = headerSectionEnd(message);
  const f = headerFields(message, end).find((x) => x.name.toLowerCase() === 'message-id');
  if (!f) return undefined;
  const value = message.subarray(f.valueStart, f.end).toString('utf8').replace(/\r?\n/g, '').trim();
  const m = /<([^<>]*)>/.exec(value);
  const id = (m ? m[1] : value).trim();
  // A value longer than any sane msg-id is a sender's junk, not something an admin searches for.
  return id ? id.slice(0, 998) : undefined;
}
