/**
 * BINARY (RFC 3516): FETCH BINARY[part]<partial>, BINARY.PEEK and BINARY.SIZE return a part with its
 * Content-Transfer-Encoding undone, so a client need not decode base64 or quoted-printable itself; APPEND may send
 * the message as a literal8 (`~{n}`). What we cannot decode is `NO [UNKNOWN-CTE]` (RFC 3516 §4.3).
 */
import { ImapError } from './command.js';
import { findPart, headerValue, parseMime, type MimeNode } from './mime.js';

export interface BinarySection {
  /** Part numbers; empty for the whole message (section-binary = "[" [section-part] "]"). */
  path: number[];
  partial?: { start: number; length?: number };
  peek: boolean;
}

export type BinaryAtt =
  | { kind: 'binary'; section: BinarySection; responseName: string }
  | { kind: 'binary-size'; path: number[]; responseName: string };

/** Parses BINARY[...]<...>, BINARY.PEEK[...]<...> and BINARY.SIZE[...] (RFC 3516 §6 fetch-att); throws on bad syntax. */
export function parseBinaryAtt(text: string): BinaryAtt {
  const m = /^BINARY(\.PEEK|\.SIZE)?\[((?:[1-9]\d*)(?:\.[1-9]\d*)*)?\](?:<(\d+)\.([1-9]\d*)>)?$/i.exec(text);
  if (!m) throw new Error(`invalid fetch attribute: ${text}`);
  const path = m[2] ? m[2].split('.').map(Number) : [];
  const name = path.join('.');
  if (m[1]?.toUpperCase() === '.SIZE') {
    // RFC 3516 §6: "BINARY.SIZE" section-binary, without a partial.
    if (m[3] !== undefined) throw new Error('BINARY.SIZE takes no partial');
    return { kind: 'binary-size', path, responseName: `BINARY.SIZE[${name}]` };
  }
  const partial = m[3] !== undefined ? { start: Number(m[3]), length: Number(m[4]) } : undefined;
  return {
    kind: 'binary',
    section: { path, partial, peek: m[1]?.toUpperCase() === '.PEEK' },
    responseName: `BINARY[${name}]${partial ? `<${partial.start}>` : ''}`,
  };
}

function transferEncoding(node: MimeNode): string {
  return (/^[^\s;(]+/.exec((headerValue(node, 'content-transfer-encoding') ?? '').trim())?.[0] ?? '7bit').toLowerCase();
}

/** Base64 (RFC 2045 §6.8): characters outside the alphabet are ignored. */
export function decodeBase64(body: Buffer): Buffer {
  return Buffer.from(body.toString('latin1').replace(/[^A-Za-z0-9+/]/g, ''), 'base64');
}

/**
 * Quoted-printable (RFC 2045 §6.7): =XX octets; "=" at the end of a line (after trailing blanks, which transport
 * may have added) is a soft line break; trailing blanks of a line are deleted (rule 3); a line break is CRLF.
 */
export function decodeQuotedPrintable(body: Buffer): Buffer {
  const lines = body.toString('latin1').split(/\r?\n/);
  const out: number[] = [];
  lines.forEach((raw, i) => {
    const last = i === lines.length - 1;
    let line = raw.replace(/[ \t]+$/, '');
    let soft = false;
    if (line.endsWith('=')) {
      soft = true;
      line = line.slice(0, -1);
    }
    for (let j = 0; j < line.length; j++) {
      const c = line.charCodeAt(j);
      if (c === 0x3d && /^[0-9A-Fa-f]{2}$/.test(line.slice(j + 1, j + 3))) {
        out.push(parseInt(line.slice(j + 1, j + 3), 16));
        j += 2;
      } else out.push(c & 0xff);
    }
    if (!soft && !last) out.push(0x0d, 0x0a);
  });
  return Buffer.from(out);
}

/** The content of BINARY[path]: the part's body with its transfer encoding undone. */
export function binaryData(raw: Buffer, tree: MimeNode, path: number[]): Buffer {
  if (!path.length) return raw;
  const part = findPart(tree, path);
  if (!part) return Buffer.alloc(0);
  // A multipart or message/rfc822 body can only be 7bit, 8bit or binary (RFC 2045 §6.4); the parts inside it are
  // decoded in place, each with "Content-Transfer-Encoding: binary" (what Dovecot's URLFETCH BINARY returns).
  if (part.children.length || part.message) return decodeNested(part.body, part);
  return decodeLeaf(part);
}

function decodeLeaf(part: MimeNode): Buffer {
  switch (transferEncoding(part)) {
    case '7bit':
    case '8bit':
    case 'binary':
      return part.body;
    case 'base64':
      return decodeBase64(part.body);
    case 'quoted-printable':
      return decodeQuotedPrintable(part.body);
    default:
      throw new ImapError('NO', 'Unknown Content-Transfer-Encoding', 'UNKNOWN-CTE');
  }
}

/**
 * `container` (a multipart's or message/rfc822 part's body) with every base64 or quoted-printable part inside it
 * decoded and its Content-Transfer-Encoding header made "binary"; other parts are left byte for byte.
 */
function decodeNested(container: Buffer, node: MimeNode): Buffer {
  const edits: { start: number; end: number; replacement: Buffer }[] = [];
  const base = container.byteOffset;
  const visit = (n: MimeNode) => {
    n.children.forEach(visit);
    if (n.message) visit(n.message);
    if (n.children.length || n.message) return;
    const cte = transferEncoding(n);
    if (cte !== 'base64' && cte !== 'quoted-printable') return;
    const start = n.header.byteOffset - base;
    const end = n.body.byteOffset - base + n.body.length;
    if (start < 0 || end > container.length) return;
    const header = n.header.toString('latin1').replace(/^(content-transfer-encoding[ \t]*:)[^\r\n]*(\r?\n[ \t][^\r\n]*)*/im, '$1 binary');
    edits.push({ start, end, replacement: Buffer.concat([Buffer.from(header, 'latin1'), decodeLeaf(n)]) });
  };
  node.children.forEach(visit);
  if (node.message) visit(node.message);
  if (!edits.length) return container;
  edits.sort((a, b) => a.start - b.start);
  const out: Buffer[] = [];
  let pos = 0;
  for (const e of edits) {
    if (e.start < pos) continue;
    out.push(container.subarray(pos, e.start), e.replacement);
    pos = e.end;
  }
  out.push(container.subarray(pos));
  return Buffer.concat(out);
}

/**
 * The part as BINARY sees it, for the RFC 5524 BODYPARTSTRUCTURE of a URLFETCH that also asks for BINARY: every
 * body is the decoded one, so sizes and line counts describe the data the client gets; the headers (and so the
 * encoding fields) stay as stored, as Dovecot reports them. Throws like binaryData for an unknown encoding.
 */
export function binaryTree(node: MimeNode): MimeNode {
  const body = node.children.length || node.message ? decodeNested(node.body, node) : decodeLeaf(node);
  return { ...node, body, children: node.children.map(binaryTree), ...(node.message ? { message: binaryTree(node.message) } : {}) };
}

export function partialOf(data: Buffer, partial: BinarySection['partial']): Buffer {
  if (!partial) return data;
  const start = Math.min(partial.start, data.length);
  const end = partial.length === undefined ? data.length : Math.min(data.length, start + partial.length);
  return data.subarray(start, end);
}

/** RFC 3516 §4.3: content with NUL octets goes as a literal8; anything else as the usual string or literal. */
export function encodeBinary(data: Buffer, encodeString: (b: Buffer) => Buffer): Buffer {
  if (data.includes(0)) return Buffer.concat([Buffer.from(`~{${data.length}}\r\n`), data]);
  return encodeString(data);
}

/**
 * APPEND of binary content (RFC 3516 §4.4, a literal8): a part declared "binary" that holds NUL or bare CR/LF
 * octets is stored base64-encoded instead, because the store keeps CRLF line ends only (DESIGN.md §6) and would
 * otherwise change its bytes. BINARY[part] decodes it back to exactly what the client sent.
 */
export function encodeBinaryParts(message: Buffer): Buffer {
  if (!message.includes(0) && !hasBareLineEnd(message)) return message;
  const tree = parseMime(message);
  const edits: { start: number; end: number; replacement: Buffer }[] = [];
  const visit = (node: MimeNode) => {
    node.children.forEach(visit);
    if (node.message) visit(node.message);
    if (node.children.length || node.message || transferEncoding(node) !== 'binary') return;
    if (!node.body.includes(0) && !hasBareLineEnd(node.body)) return;
    const header = node.header.toString('latin1').replace(/^(content-transfer-encoding[ \t]*:)[^\r\n]*(\r?\n[ \t][^\r\n]*)*/im, '$1 base64');
    const b64 = (node.body.toString('base64').match(/.{1,76}/g) ?? []).join('\r\n');
    const start = node.header.byteOffset - message.byteOffset;
    const end = node.body.byteOffset - message.byteOffset + node.body.length;
    edits.push({ start, end, replacement: Buffer.concat([Buffer.from(header, 'latin1'), Buffer.from(b64 ? b64 + '\r\n' : '', 'latin1')]) });
  };
  visit(tree);
  if (!edits.length) return message;
  edits.sort((a, b) => a.start - b.start);
  const out: Buffer[] = [];
  let pos = 0;
  for (const e of edits) {
    if (e.start < pos) continue;
    out.push(message.subarray(pos, e.start), e.replacement);
    pos = e.end;
  }
  out.push(message.subarray(pos));
  return Buffer.concat(out);
}

function hasBareLineEnd(b: Buffer): boolean {
  for (let i = 0; i < b.length; i++) {
    if (b[i] === 0x0a && (i === 0 || b[i - 1] !== 0x0d)) return true;
    if (b[i] === 0x0d && b[i + 1] !== 0x0a) return true;
  }
  return false;
}
