/**
 * The header section of a message as IMAP parses it (src/imap/mime.ts uses these): split from the body at the first
 * empty line, then one field per unfolded line. Here, in the store, because the folder index caches the header fields
 * SEARCH compares (folder-index.ts SEARCH_HEADER_FIELDS) when APPEND or COPY hands it a message, and they must be the
 * fields SEARCH would have parsed from the file.
 */

export function splitHeader(buf: Buffer): { header: Buffer; body: Buffer } {
  if (buf.length >= 2 && buf[0] === 0x0d && buf[1] === 0x0a) return { header: buf.subarray(0, 2), body: buf.subarray(2) };
  if (buf.length >= 1 && buf[0] === 0x0a) return { header: buf.subarray(0, 1), body: buf.subarray(1) };
  let i = buf.indexOf('\r\n\r\n');
  let len = 4;
  const j = buf.indexOf('\n\n');
  if (j >= 0 && (i < 0 || j < i)) {
    i = j;
    len = 2;
  }
  if (i < 0) return { header: buf, body: buf.subarray(buf.length) };
  return { header: buf.subarray(0, i + len), body: buf.subarray(i + len) };
}

export function parseHeaderLines(header: Buffer): { key: string; value: string }[] {
  const out: { key: string; value: string }[] = [];
  const text = header.toString('latin1');
  for (const line of text.split(/\r?\n(?![ \t])/)) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    // RFC 5322 §2.2.3: unfolding removes the CRLF and keeps the whitespace after it.
    out.push({ key: line.slice(0, colon).trim().toLowerCase(), value: line.slice(colon + 1).replace(/\r?\n(?=[ \t])/g, '').trim() });
  }
  return out;
}

/**
 * The header fields cached for SEARCH (RFC 3501 §6.4.4 FROM, TO, CC, BCC, SUBJECT, SENT* on Date, and the fields
 * clients ask HEADER about most: threading and list headers). HEADER on any other field reads the files.
 */
export const SEARCH_HEADER_FIELDS: ReadonlySet<string> = new Set([
  'from',
  'to',
  'cc',
  'bcc',
  'subject',
  'date',
  'message-id',
  'in-reply-to',
  'references',
  'reply-to',
  'sender',
  'list-id',
]);

/** A message's cached SEARCH header fields: [key, value] pairs in header order (keys lowercase). */
export type SearchHeaders = [string, string][];

/** The SEARCH_HEADER_FIELDS of a parsed header section ([key, value] as mime.ts parseHeaderLines gives them). */
export function searchHeadersOf(headers: { key: string; value: string }[]): SearchHeaders {
  return headers.filter((h) => SEARCH_HEADER_FIELDS.has(h.key)).map((h) => [h.key, h.value]);
}

/** The SEARCH_HEADER_FIELDS of a whole message (or its header section). */
export function searchHeadersOfMessage(message: Buffer): SearchHeaders {
  return searchHeadersOf(parseHeaderLines(splitHeader(message).header));
}
