/**
 * MIME helpers for the filters: the leaf parts of a message, decoded (RFC 2045 §6.7 quoted-printable, §6.8 base64),
 * and the header-section edits `applyMarks` needs (RFC 5322 §2.2 fields, RFC 2047 encoded words).
 *
 * Parsing is mailsplit's (the splitter of WildDuck and ZoneMTA, by the author of nodemailer and smtp-server): it only
 * splits, so it neither decodes text nor converts charsets, and it keeps the original bytes. Embedded messages
 * (message/rfc822) are returned as leaves: the attachment stage parses them again itself, which treats an inline
 * embedded message, an attached one and a (non-conforming, RFC 2046 §5.2.1) base64-encoded one the same way.
 */
import { createRequire } from 'node:module';
import type { Transform } from 'node:stream';

interface MailsplitNode {
  type: 'node';
  root: boolean;
  contentType: string | false;
  disposition: string | false;
  encoding: string | false;
  filename: string | false;
  multipart: string | false;
}
type MailsplitChunk = MailsplitNode | { type: 'body' | 'data'; value: Buffer; node: MailsplitNode };
interface MailsplitModule {
  Splitter: new (options?: { ignoreEmbedded?: boolean; maxHeadSize?: number; maxChildNodes?: number }) => Transform;
}

// mailsplit is CommonJS without type declarations; the few fields used here are typed above.
const { Splitter } = createRequire(import.meta.url)('mailsplit') as MailsplitModule;

/** A leaf part (not multipart/*) of a message. */
export interface MimeLeaf {
  /** Lower-case type/subtype; text/plain when the part has no Content-Type (RFC 2045 §5.2). */
  contentType: string;
  /** From Content-Disposition's filename or Content-Type's name, RFC 2047/2231 decoded; for logs only. */
  filename?: string;
  disposition?: string;
  /** Lower-case Content-Transfer-Encoding, if any. */
  encoding?: string;
  /** The body as transmitted (transfer-encoded). */
  raw: Buffer;
}

export class MimeStructureError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'MimeStructureError';
  }
}

export interface MimeLimits {
  /** MIME nodes in the message, multiparts included (mailsplit counts every node); default 1000. */
  maxParts?: number;
  /** Bytes of one part's header section; default 1 MB. */
  maxHeadSize?: number;
}

/**
 * The leaf parts of `message` in document order. Throws MimeStructureError when a limit is exceeded (the caller
 * decides what an uninspectable message means); malformed MIME is otherwise parsed leniently, as mail clients do.
 */
export async function mimeLeaves(message: Buffer, limits: MimeLimits = {}): Promise<MimeLeaf[]> {
  const splitter = new Splitter({
    ignoreEmbedded: true,
    maxChildNodes: limits.maxParts ?? 1000,
    maxHeadSize: limits.maxHeadSize ?? 1024 * 1024,
  });
  const leaves: { node: MailsplitNode; chunks: Buffer[] }[] = [];
  let current: { node: MailsplitNode; chunks: Buffer[] } | null = null;
  splitter.on('data', (chunk: MailsplitChunk) => {
    if (chunk.type === 'node') {
      current = chunk.multipart ? null : { node: chunk, chunks: [] };
      if (current) leaves.push(current);
    } else if (chunk.type === 'body' && current && chunk.node === current.node) {
      current.chunks.push(chunk.value);
    }
  });
  await new Promise<void>((resolve, reject) => {
    splitter.once('end', resolve);
    splitter.once('error', (err: Error) => reject(new MimeStructureError(`cannot parse MIME structure: ${err.message}`, { cause: err })));
    splitter.end(message);
  });
  return leaves.map(({ node, chunks }) => {
    const leaf: MimeLeaf = { contentType: node.contentType || 'text/plain', raw: Buffer.concat(chunks) };
    if (node.filename) leaf.filename = node.filename;
    if (node.disposition) leaf.disposition = node.disposition;
    if (node.encoding) leaf.encoding = node.encoding.toLowerCase();
    return leaf;
  });
}

/** The decoded body of a leaf; unknown encodings (7bit, 8bit, binary, x-uuencode…) are returned as they are. */
export function decodeLeaf(leaf: MimeLeaf): Buffer {
  switch (leaf.encoding) {
    case 'base64':
      return decodeBase64(leaf.raw);
    case 'quoted-printable':
      return decodeQuotedPrintable(leaf.raw);
    default:
      return leaf.raw;
  }
}

/**
 * RFC 2045 §6.8, leniently: characters outside the alphabet are ignored (§6.8 says so for line breaks and allows
 * it for the rest), and a padded group in the middle does not end the data, as in lenient clients. Node's decoder
 * alone would stop at the first `=`, so what a client shows and what the filter sees could differ.
 */
export function decodeBase64(raw: Buffer): Buffer {
  const clean = raw.toString('latin1').replace(/[^A-Za-z0-9+/=]+/g, '');
  const groups = clean.match(/[A-Za-z0-9+/]+={0,2}/g) ?? [];
  if (groups.length <= 1) return Buffer.from(groups[0] ?? '', 'base64');
  return Buffer.concat(groups.map((g) => Buffer.from(g, 'base64')));
}

const hexValue = (c: number): number =>
  c >= 0x30 && c <= 0x39 ? c - 0x30 : c >= 0x41 && c <= 0x46 ? c - 0x37 : c >= 0x61 && c <= 0x66 ? c - 0x57 : -1;

/** RFC 2045 §6.7: `=XX` octets and `=` soft line breaks (CRLF or bare LF); a malformed `=` is kept as it is (rule 1). */
export function decodeQuotedPrintable(raw: Buffer): Buffer {
  const out = Buffer.allocUnsafe(raw.length);
  let o = 0;
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i];
    if (c !== 0x3d) {
      out[o++] = c;
      continue;
    }
    // Soft line break: "=" then optional transport padding (rule 3) then a line break.
    let j = i + 1;
    while (j < raw.length && (raw[j] === 0x20 || raw[j] === 0x09)) j++;
    if (j < raw.length && (raw[j] === 0x0a || (raw[j] === 0x0d && raw[j + 1] === 0x0a))) {
      i = raw[j] === 0x0d ? j + 1 : j;
      continue;
    }
    if (j >= raw.length) {
      i = j;
      continue;
    }
    const hi = hexValue(raw[i + 1] ?? -1);
    const lo = hexValue(raw[i + 2] ?? -1);
    if (hi >= 0 && lo >= 0) {
      out[o++] = (hi << 4) | lo;
      i += 2;
    } else {
      out[o++] = c;
    }
  }
  return out.subarray(0, o);
}

// ---- Header section ------------------------------------------------------------------------------------------------

/** Offset just past the blank line ending the header section (RFC 5322 §2.1), or the message length if none. */
export function headerSectionEnd(message: Buffer): number {
  const crlf = message.indexOf('\r\n\r\n');
  const lf = message.indexOf('\n\n');
  if (message.length >= 2 && message[0] === 0x0d && message[1] === 0x0a) return 2; // no header fields at all
  if (crlf < 0 && lf < 0) return message.length;
  if (crlf >= 0 && (lf < 0 || crlf < lf)) return crlf + 4;
  return lf + 2;
}

/** A header field as it is in the message: `start`..`end` covers the name, the value and its folded lines and CRLF. */
export interface RawField {
  name: string;
  start: number;
  end: number;
  /** Offset of the first byte after the colon. */
  valueStart: number;
}

/** The fields of a header section (`message[0..end)`), in order. */
export function headerFields(message: Buffer, end = headerSectionEnd(message)): RawField[] {
  const fields: RawField[] = [];
  let pos = 0;
  while (pos < end) {
    let lineEnd = message.indexOf(0x0a, pos);
    if (lineEnd < 0 || lineEnd >= end) lineEnd = end - 1;
    const line = message.subarray(pos, lineEnd + 1);
    if (line.length <= 2 && (line[0] === 0x0d || line[0] === 0x0a)) break; // the blank line
    const colon = line.indexOf(0x3a);
    // RFC 5322 §2.2: a field name is printable US-ASCII without colon or space. A continuation line (starting with
    // WSP) or junk without a colon belongs to the previous field.
    if (line[0] !== 0x20 && line[0] !== 0x09 && colon > 0) {
      fields.push({ name: line.subarray(0, colon).toString('latin1').trim(), start: pos, end: lineEnd + 1, valueStart: pos + colon + 1 });
    } else if (fields.length) {
      fields[fields.length - 1].end = lineEnd + 1;
    }
    pos = lineEnd + 1;
  }
  return fields;
}

/**
 * RFC 2047 decoding of an unstructured value (Subject): encoded words are decoded with their charset, whitespace
 * between two adjacent encoded words is dropped (§6.2), line folding is removed (RFC 5322 §2.2.3). Bytes outside
 * encoded words are read as UTF-8 (RFC 6532).
 */
export function decodeWords(value: string): string {
  const unfolded = value.replace(/\r?\n(?=[ \t])/g, '');
  return unfolded
    .replace(/(=\?[^?\s]+\?[BbQq]\?[^?\s]*\?=)\s+(?==\?[^?\s]+\?[BbQq]\?[^?\s]*\?=)/g, '$1')
    .replace(/=\?([^?\s]+)\?([BbQq])\?([^?\s]*)\?=/g, (word, charsetSpec: string, enc: string, text: string) => {
      const charset = charsetSpec.split('*')[0]; // RFC 2231 §5 language suffix
      const bytes =
        enc.toUpperCase() === 'B'
          ? Buffer.from(text, 'base64')
          : decodeQuotedPrintable(Buffer.from(text.replace(/_/g, ' '), 'latin1'));
      try {
        return new TextDecoder(charset).decode(bytes);
      } catch {
        return word; // unknown charset: leave the word as it was
      }
    });
}
