/**
 * The per-domain disclaimer (the seed's Email > Domains page): a fixed legal text, written in Markdown, that the
 * server ATTACHES to outgoing messages — it never edits the sender's text. The seed: "can only be attached (not
 * added) to messages by the mail server. This technique allows maintaining the integrity of the message in case
 * of digital signature."
 *
 * So the message becomes a multipart/mixed (RFC 2046 §5.1.3) of two parts:
 *   1. the original entity: the original Content-* header fields, as they were, and the original body, unchanged
 *      to the byte — an S/MIME or PGP/MIME signature over it still verifies;
 *   2. the disclaimer as multipart/alternative: text/plain (the Markdown source) and text/html (rendered with
 *      marked), both UTF-8 quoted-printable so every line stays well under 998 octets (RFC 5322 §2.1.1).
 * The top-level header keeps every other field of the original, in order and byte for byte, and gets
 * MIME-Version, the new Content-Type and `X-Postern-Disclaimer: yes`, which stops a second wrapping.
 *
 * What this cannot keep: a DKIM signature that covers Content-Type (most do) no longer verifies, because the
 * top-level Content-Type changes. Sign after attaching (our own DKIM signing must run after this step).
 */
import { randomBytes } from 'node:crypto';
import { Marked } from 'marked';

export const DISCLAIMER_HEADER = 'X-Postern-Disclaimer';

const CRLF = Buffer.from('\r\n');

interface HeaderField {
  /** Lower-case field name ('' for a line that is not a field, e.g. an mbox "From " line). */
  name: string;
  /** The field as it was, folding and final CRLF included. */
  raw: Buffer;
}

/** Turns any bare CR or LF into CRLF. A no-op for spooled messages, which are CRLF already. */
function toCrlf(message: Buffer): Buffer {
  let clean = true;
  for (let i = 0; i < message.length; i++) {
    const b = message[i];
    if ((b === 0x0d && message[i + 1] !== 0x0a) || (b === 0x0a && message[i - 1] !== 0x0d)) {
      clean = false;
      break;
    }
  }
  if (clean) return message;
  return Buffer.from(message.toString('latin1').replace(/\r\n|\r|\n/g, '\r\n'), 'latin1');
}

/** Header block (each line with its CRLF) and body. RFC 5322 §2.1: the first empty line separates them. */
function split(message: Buffer): { header: Buffer; body: Buffer } {
  if (message.subarray(0, 2).equals(CRLF)) return { header: Buffer.alloc(0), body: message.subarray(2) };
  const end = message.indexOf('\r\n\r\n');
  if (end < 0) {
    // Only a header (no body at all); make sure its last line is terminated.
    const header = message.length && !message.subarray(-2).equals(CRLF) ? Buffer.concat([message, CRLF]) : message;
    return { header, body: Buffer.alloc(0) };
  }
  return { header: message.subarray(0, end + 2), body: message.subarray(end + 4) };
}

function parseFields(header: Buffer): HeaderField[] {
  const fields: HeaderField[] = [];
  let start = 0;
  let current: { name: string; start: number } | null = null;
  while (start < header.length) {
    let eol = header.indexOf('\r\n', start);
    eol = eol < 0 ? header.length : eol + 2;
    const first = header[start];
    const continuation = first === 0x20 || first === 0x09;
    if (!continuation || !current) {
      if (current) fields.push({ name: current.name, raw: header.subarray(current.start, start) });
      const line = header.subarray(start, eol).toString('latin1');
      const m = /^([^\s:]+)[ \t]*:/.exec(line);
      current = { name: m ? m[1].toLowerCase() : '', start };
    }
    start = eol;
  }
  if (current) fields.push({ name: current.name, raw: header.subarray(current.start) });
  return fields;
}

/** The unfolded value of a field, comments and parameters left in. */
function fieldValue(f: HeaderField): string {
  const s = f.raw.toString('latin1');
  return s
    .slice(s.indexOf(':') + 1)
    .replace(/\r\n([ \t])/g, '$1')
    .trim();
}

/** True when the message's top-level header has X-Postern-Disclaimer: it was wrapped already. */
export function hasDisclaimer(message: Buffer): boolean {
  const { header } = split(toCrlf(message));
  const key = DISCLAIMER_HEADER.toLowerCase();
  return parseFields(header).some((f) => f.name === key);
}

/**
 * Quoted-printable (RFC 2045 §6.7) of UTF-8 text: line breaks become CRLF, lines are soft-wrapped at 76 characters.
 * Encodes '=' and everything outside printable ASCII, whitespace before a line end, and a "." or "From " at the
 * start of a line (harmless, and it keeps naive transports from mangling it).
 */
export function quotedPrintable(text: string): string {
  const out: string[] = [];
  for (const line of text.replace(/\r\n|\r|\n/g, '\n').split('\n')) {
    const bytes = Buffer.from(line, 'utf8');
    const tokens: string[] = [];
    for (let i = 0; i < bytes.length; i++) {
      const b = bytes[i];
      const last = i === bytes.length - 1;
      const literal =
        (b >= 33 && b <= 126 && b !== 61) || ((b === 0x20 || b === 0x09) && !last);
      const leadingDot = i === 0 && b === 0x2e;
      const leadingFrom = i === 0 && line.startsWith('From ');
      tokens.push(literal && !leadingDot && !leadingFrom ? String.fromCharCode(b) : `=${b.toString(16).toUpperCase().padStart(2, '0')}`);
    }
    let cur = '';
    for (const t of tokens) {
      if (cur.length + t.length > 75) {
        out.push(`${cur}=`);
        cur = '';
      }
      cur += t;
    }
    out.push(cur);
  }
  return out.join('\r\n') + '\r\n';
}

const markdown = new Marked({ async: false, gfm: true });

/** The disclaimer's HTML: Markdown rendered as a small standalone document. */
export function renderDisclaimerHtml(md: string): string {
  const body = markdown.parse(md.replace(/\r\n?/g, '\n')) as string;
  return `<!DOCTYPE html>\n<html><head><meta charset="utf-8"></head><body>\n${body}</body></html>\n`;
}

function boundaryNotIn(...buffers: Buffer[]): string {
  for (;;) {
    const b = `=_postern_${randomBytes(12).toString('hex')}`;
    if (!buffers.some((buf) => buf.includes(b))) return b;
  }
}

/**
 * Wraps `message` (CRLF) with the Markdown `disclaimer` attached, as described above. A message that already
 * carries X-Postern-Disclaimer, or an empty disclaimer, is returned unchanged (the same Buffer): never twice.
 */
export function attachDisclaimer(message: Buffer, disclaimer: string): Buffer {
  if (!disclaimer.trim()) return message;
  const msg = toCrlf(message);
  const { header, body } = split(msg);
  const fields = parseFields(header);
  if (fields.some((f) => f.name === DISCLAIMER_HEADER.toLowerCase())) return message;

  const content = fields.filter((f) => f.name.startsWith('content-'));
  const others = fields.filter((f) => !f.name.startsWith('content-') && f.name !== 'mime-version');

  // RFC 2045 §6.4: a multipart entity is 7bit, 8bit or binary, and no less than what it contains.
  const cte = content.find((f) => f.name === 'content-transfer-encoding');
  const declared = cte ? fieldValue(cte).toLowerCase().replace(/\(.*?\)/g, '').trim() : '7bit';
  let outerCte: string | null = null;
  if (declared === 'binary') outerCte = 'binary';
  else if (declared === '8bit' || body.some((b) => b > 0x7f)) outerCte = '8bit';

  const plain = disclaimer.replace(/\r\n?/g, '\n').replace(/\n*$/, '\n');
  const textPart = quotedPrintable(plain);
  const htmlPart = quotedPrintable(renderDisclaimerHtml(plain));
  const outer = boundaryNotIn(msg, Buffer.from(textPart), Buffer.from(htmlPart));
  const inner = boundaryNotIn(msg, Buffer.from(textPart), Buffer.from(htmlPart), Buffer.from(outer));

  const originalContent = content.length
    ? content.some((f) => f.name === 'content-type')
      ? content.map((f) => f.raw)
      : [Buffer.from('Content-Type: text/plain; charset=us-ascii\r\n'), ...content.map((f) => f.raw)]
    : [Buffer.from('Content-Type: text/plain; charset=us-ascii\r\n')];

  const lines = (...l: string[]) => Buffer.from(l.map((s) => `${s}\r\n`).join(''), 'utf8');
  return Buffer.concat([
    ...others.map((f) => f.raw),
    lines(
      `${DISCLAIMER_HEADER}: yes`,
      'MIME-Version: 1.0',
      `Content-Type: multipart/mixed; boundary="${outer}"`,
      ...(outerCte ? [`Content-Transfer-Encoding: ${outerCte}`] : []),
      '',
      'This is a multi-part message in MIME format.',
      `--${outer}`,
    ),
    ...originalContent,
    CRLF,
    body,
    // The CRLF before a boundary belongs to the boundary (RFC 2046 §5.1.1): the body above stays byte-exact.
    lines(
      '',
      `--${outer}`,
      `Content-Type: multipart/alternative; boundary="${inner}"`,
      'Content-Description: disclaimer',
      '',
      `--${inner}`,
      'Content-Type: text/plain; charset=utf-8',
      'Content-Transfer-Encoding: quoted-printable',
      '',
    ),
    Buffer.from(textPart, 'latin1'),
    lines(
      `--${inner}`,
      'Content-Type: text/html; charset=utf-8',
      'Content-Transfer-Encoding: quoted-printable',
      '',
    ),
    Buffer.from(htmlPart, 'latin1'),
    lines(`--${inner}--`, '', `--${outer}--`),
  ]);
}
