/**
 * A message as a POP3 multi-line response body (RFC 1939 §3): every line ending in CRLF, a line starting with '.'
 * doubled, and the terminating ".CRLF" appended. Stored messages already have CRLF line ends (DESIGN.md §6), but a
 * file another program dropped into the Maildir may have bare LFs: those become CRLF, so a client never sees a
 * bare LF and a lone "." inside a message can never end the response early.
 */
const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;

export function dotStuff(message: Buffer, opts: { maxBodyLines?: number } = {}): Buffer {
  const out = Buffer.allocUnsafe(message.length + Math.ceil(message.length / 8) + 5);
  let o = 0;
  let atLineStart = true;
  let inBody = false;
  let bodyLines = 0;
  let lineLength = 0;
  const limit = opts.maxBodyLines;
  let i = 0;
  let buf = out;
  const ensure = (n: number) => {
    if (o + n <= buf.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(buf.length * 2, o + n));
    buf.copy(bigger, 0, 0, o);
    buf = bigger;
  };
  for (; i < message.length; i++) {
    if (limit !== undefined && inBody && atLineStart && bodyLines >= limit) break;
    const c = message[i]!;
    ensure(3);
    if (atLineStart && c === DOT) buf[o++] = DOT;
    if (c === LF) {
      buf[o++] = CR;
      buf[o++] = LF;
      if (!inBody && lineLength === 0) inBody = true;
      else if (inBody) bodyLines++;
      atLineStart = true;
      lineLength = 0;
      continue;
    }
    if (c === CR) {
      if (message[i + 1] === LF) continue; // the LF writes the CRLF
      // RFC 5322 §2.3: no bare CR either.
      buf[o++] = CR;
      buf[o++] = LF;
      if (!inBody && lineLength === 0) inBody = true;
      else if (inBody) bodyLines++;
      atLineStart = true;
      lineLength = 0;
      continue;
    }
    buf[o++] = c;
    atLineStart = false;
    lineLength++;
  }
  ensure(5);
  if (!atLineStart) {
    buf[o++] = CR;
    buf[o++] = LF;
  }
  buf[o++] = DOT;
  buf[o++] = CR;
  buf[o++] = LF;
  return buf.subarray(0, o);
}
