/**
 * A SieveMessage from a stored RFC 5322 message and its envelope, for execute(); and applyEditedHeaders() to write
 * editheader's result (RFC 5293) into the delivered copy. Bodies for the body test (RFC 5173) come from the IMAP
 * MIME parser (src/imap/mime.ts), decoded lazily and only when a script asks.
 */
import { decodeBase64, decodeQuotedPrintable } from '../imap/binary.js';
import { headerValue, parseMime, type MimeNode } from '../imap/mime.js';
import { htmlToText } from '../imap/preview.js';
import { splitHeader } from '../store/header-fields.js';
import { decodeHeaderValue } from './header-decode.js';
import type { SieveEnvelope, SieveHeaderField, SieveMessage } from './types.js';

/** The top-level header fields, unfolded (RFC 5322 §2.2.3), values as UTF-8 text (RFC 6532) without outer blanks. */
export function parseHeaderFields(header: Buffer): SieveHeaderField[] {
  const out: SieveHeaderField[] = [];
  for (const line of header.toString('utf8').split(/\r?\n(?![ \t])/)) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim();
    if (!/^[\x21-\x39\x3b-\x7e]+$/.test(name)) continue;
    out.push({ name, value: line.slice(colon + 1).replace(/\r?\n(?=[ \t])/g, '').trim() });
  }
  return out;
}

function decodePart(node: MimeNode): string {
  const enc = (headerValue(node, 'content-transfer-encoding') ?? '').trim().toLowerCase();
  let raw: Buffer = node.body;
  if (enc === 'base64') raw = decodeBase64(node.body);
  else if (enc === 'quoted-printable') raw = decodeQuotedPrintable(node.body);
  const charset = (node.params.charset ?? 'utf-8').toLowerCase();
  try {
    return new TextDecoder(charset).decode(raw);
  } catch {
    return raw.toString('utf8');
  }
}

/**
 * RFC 5173 §5.2: a content-type key is "" (all types), a main type ("text") or a full type ("text/html"); one that
 * begins or ends with "/" or has several slashes matches nothing.
 */
function typeMatches(node: MimeNode, types: string[]): boolean {
  const full = `${node.type}/${node.subtype}`.toLowerCase();
  return types.some((t) => {
    const k = t.toLowerCase().trim();
    if (k === '') return true;
    if (k.startsWith('/') || k.endsWith('/') || k.split('/').length > 2) return false;
    return k.includes('/') ? k === full : k === node.type.toLowerCase();
  });
}

/** The prologue and epilogue of a multipart body (RFC 2046 §5.1.1), the text around its parts. */
function prologueEpilogue(node: MimeNode): string[] {
  const boundary = node.params.boundary;
  if (!boundary) return [node.body.toString('utf8')];
  const text = node.body.toString('utf8');
  const lines = text.split(/(?<=\n)/);
  let first = -1;
  let close = -1;
  lines.forEach((l, i) => {
    const t = l.replace(/\r?\n$/, '').trimEnd();
    if (t === `--${boundary}` && first < 0) first = i;
    if (t === `--${boundary}--` && close < 0) close = i;
  });
  // The line end before a delimiter belongs to the delimiter (RFC 2046 §5.1.1).
  const prologue = first < 0 ? text : lines.slice(0, first).join('').replace(/\r?\n$/, '');
  const epilogue = close < 0 ? '' : lines.slice(close + 1).join('');
  return [prologue, epilogue];
}

/**
 * RFC 5173 §5.2 :content: every part whose type matches, descending into multiparts and message/rfc822 parts: a
 * multipart gives its prologue and epilogue, a message/rfc822 part the header of the message it holds, any other
 * part its decoded content.
 */
function contentOf(node: MimeNode, types: string[], out: string[] = []): string[] {
  const type = node.type.toLowerCase();
  const sub = node.subtype.toLowerCase();
  if (type === 'multipart') {
    if (typeMatches(node, types)) out.push(...prologueEpilogue(node));
    for (const c of node.children) contentOf(c, types, out);
  } else if (node.message && type === 'message' && (sub === 'rfc822' || sub === 'global')) {
    if (typeMatches(node, types)) out.push(splitHeader(node.body).header.toString('utf8'));
    contentOf(node.message, types, out);
  } else if (typeMatches(node, types)) out.push(decodePart(node));
  return out;
}

/** The leaf parts in order, going into attached messages. */
function leaves(node: MimeNode, out: MimeNode[] = []): MimeNode[] {
  if (node.children.length) for (const c of node.children) leaves(c, out);
  else if (node.message) leaves(node.message, out);
  else out.push(node);
  return out;
}

/** RFC 5173 §4: a message that is only a header, with no empty line after it, has no body at all. */
function hasBody(raw: Buffer): boolean {
  return raw.indexOf('\r\n\r\n') >= 0 || raw.indexOf('\n\n') >= 0 || raw[0] === 0x0a || (raw[0] === 0x0d && raw[1] === 0x0a);
}

export function buildSieveMessage(raw: Buffer, envelope: SieveEnvelope): SieveMessage {
  const { header, body } = splitHeader(raw);
  const fields = parseHeaderFields(header);
  let tree: MimeNode | undefined;
  const mime = () => (tree ??= parseMime(raw));
  const byName = (name: string) => {
    const k = name.toLowerCase();
    return fields.filter((f) => f.name.toLowerCase() === k).map((f) => f.value);
  };
  return {
    size: raw.length,
    envelope,
    rawHeaders: byName,
    headers: (name) => byName(name).map(decodeHeaderValue),
    headerFields: () => fields.map((f) => ({ ...f })),
    body(transform, contentTypes) {
      if (!hasBody(raw)) return [];
      // RFC 5173 §5.1: :raw is the body as it is, without the header, no decoding.
      if (transform === 'raw') return [body.toString('utf8')];
      if (transform === 'content') return contentOf(mime(), contentTypes ?? ['']);
      // RFC 5173 §5.3 :text: the text of each text part (one string per part), markup removed from HTML.
      return leaves(mime())
        .filter((p) => p.type.toLowerCase() === 'text')
        .map((p) => (p.subtype.toLowerCase() === 'html' ? htmlToText(decodePart(p)) : decodePart(p)));
    },
  };
}

/** Folds a header line at blanks so it stays within 78 characters where it can (RFC 5322 §2.1.1). */
function fold(line: string): string {
  if (line.length <= 78) return line;
  const out: string[] = [];
  let rest = line;
  while (rest.length > 78) {
    let cut = rest.lastIndexOf(' ', 78);
    if (cut <= 0) cut = rest.indexOf(' ', 78);
    if (cut <= 0) break;
    out.push(rest.slice(0, cut));
    rest = rest.slice(cut);
  }
  out.push(rest);
  return out.join('\r\n');
}

/** The message with its top-level header replaced by editheader's result (ExecuteResult.editedHeaders). */
export function applyEditedHeaders(raw: Buffer, fields: SieveHeaderField[]): Buffer {
  const { body } = splitHeader(raw);
  const head = fields.map((f) => fold(`${f.name}: ${f.value}`) + '\r\n').join('') + '\r\n';
  return Buffer.concat([Buffer.from(head, 'utf8'), body]);
}
