/**
 * The MIME tree of a stored message for FETCH (ENVELOPE, BODYSTRUCTURE, BODY[section]) and SEARCH. We keep byte
 * offsets into the original buffer, because BODY[section] must return the exact bytes (RFC 3501 §6.4.5), never a
 * re-encoded form.
 */
import libmime from 'libmime';
import { atom, type Value } from './response.js';

export interface MimeNode {
  /** The header block including the blank line that ends it. */
  header: Buffer;
  body: Buffer;
  headers: { key: string; value: string }[];
  type: string;
  subtype: string;
  params: Record<string, string>;
  children: MimeNode[];
  /** For message/rfc822 parts: the encapsulated message. */
  message?: MimeNode;
}

function splitHeader(buf: Buffer): { header: Buffer; body: Buffer } {
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
    out.push({ key: line.slice(0, colon).trim().toLowerCase(), value: line.slice(colon + 1).replace(/\r?\n[ \t]/g, ' ').trim() });
  }
  return out;
}

export function headerValue(node: MimeNode, key: string): string | undefined {
  return node.headers.find((h) => h.key === key)?.value;
}

/** A header value as UTF-8 text (8-bit headers are UTF-8 in practice, RFC 6532). */
function utf8(latin1: string): string {
  return Buffer.from(latin1, 'latin1').toString('utf8');
}

export function parseMime(buf: Buffer, defaultType = 'text/plain', depth = 0): MimeNode {
  const { header, body } = splitHeader(buf);
  const headers = parseHeaderLines(header);
  const ct = headers.find((h) => h.key === 'content-type')?.value;
  let type = defaultType.split('/')[0];
  let subtype = defaultType.split('/')[1];
  let params: Record<string, string> = ct ? {} : defaultType === 'text/plain' ? { charset: 'us-ascii' } : {};
  if (ct) {
    const parsed = libmime.parseHeaderValue(utf8(ct));
    const [t, s] = String(parsed.value).toLowerCase().split('/');
    if (t && s) {
      type = t.trim();
      subtype = s.trim();
    }
    params = {};
    for (const [k, v] of Object.entries(parsed.params)) params[k.toLowerCase()] = String(v);
  }
  const node: MimeNode = { header, body, headers, type, subtype, params, children: [] };
  // Deeply nested messages are a denial-of-service vector: treat anything past 20 levels as a leaf.
  if (depth > 20) return node;
  if (type === 'multipart' && params.boundary) {
    const childDefault = subtype === 'digest' ? 'message/rfc822' : 'text/plain';
    for (const part of splitMultipart(body, params.boundary)) node.children.push(parseMime(part, childDefault, depth + 1));
  } else if (type === 'message' && (subtype === 'rfc822' || subtype === 'global')) {
    node.message = parseMime(body, 'text/plain', depth + 1);
  }
  return node;
}

function splitMultipart(body: Buffer, boundary: string): Buffer[] {
  const parts: Buffer[] = [];
  const delim = Buffer.from('--' + boundary, 'latin1');
  let pos = 0;
  let start = -1;
  while (pos <= body.length) {
    const i = body.indexOf(delim, pos);
    if (i < 0) break;
    const atLineStart = i === 0 || body[i - 1] === 0x0a;
    // "--b1" must not match the start of "--b10": after the boundary comes "--", blanks or the line end.
    const next = body[i + delim.length];
    const boundaryEnds = next === undefined || next === 0x2d || next === 0x20 || next === 0x09 || next === 0x0d || next === 0x0a;
    if (!atLineStart || !boundaryEnds) {
      pos = i + 1;
      continue;
    }
    const after = i + delim.length;
    const closing = body[after] === 0x2d && body[after + 1] === 0x2d;
    if (start >= 0) {
      // The CRLF before the delimiter belongs to the delimiter (RFC 2046 §5.1.1).
      let end = i;
      if (end > start && body[end - 1] === 0x0a) end--;
      if (end > start && body[end - 1] === 0x0d) end--;
      parts.push(body.subarray(start, end));
    }
    if (closing) return parts;
    const nl = body.indexOf(0x0a, after);
    if (nl < 0) return parts;
    start = nl + 1;
    pos = start;
  }
  if (start >= 0 && start < body.length) parts.push(body.subarray(start));
  return parts;
}

/** The part at a path (RFC 3501 §6.4.5 section numbering): a non-multipart message is its own part 1. */
export function findPart(root: MimeNode, path: number[]): MimeNode | undefined {
  let node: MimeNode | undefined = root;
  for (const n of path) {
    if (!node) return undefined;
    if (node.message && !node.children.length) node = node.message;
    if (node.children.length) node = node.children[n - 1];
    else if (n !== 1) return undefined;
  }
  return node;
}

/** Lines of a body: a last line without its CRLF (the CRLF before a boundary belongs to the boundary) counts. */
function countLines(b: Buffer): number {
  let n = 0;
  for (const c of b) if (c === 0x0a) n++;
  if (b.length && b[b.length - 1] !== 0x0a) n++;
  return n;
}

// ---- ENVELOPE ---------------------------------------------------------------------------------------------------

export interface Address {
  name: string | null;
  address: string;
  group?: Address[];
}

/** A small RFC 5322 address-list parser: "Name" <a@b>, a@b (Comment), groups "team: a@b, c@d;". */
export function parseAddressList(text: string): Address[] {
  const tokens: string[] = [];
  let cur = '';
  let depth = 0;
  let quoted = false;
  let angle = false;
  const items: { text: string; group?: string }[] = [];
  let groupName: string | undefined;
  const groupItems: string[] = [];
  const flush = (s: string) => {
    const t = s.trim();
    if (groupName !== undefined) {
      if (t) groupItems.push(t);
    } else if (t) items.push({ text: t });
  };
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      cur += c;
      if (c === '\\' && i + 1 < text.length) cur += text[++i];
      else if (c === '"') quoted = false;
      continue;
    }
    if (depth > 0) {
      if (c === '(') depth++;
      else if (c === ')') depth--;
      cur += c;
      continue;
    }
    if (c === '"') quoted = true;
    else if (c === '(') depth++;
    else if (c === '<') angle = true;
    else if (c === '>') angle = false;
    else if (c === ',' && !angle) {
      flush(cur);
      cur = '';
      continue;
    } else if (c === ':' && !angle && groupName === undefined) {
      groupName = cur.trim();
      cur = '';
      continue;
    } else if (c === ';' && !angle && groupName !== undefined) {
      flush(cur);
      cur = '';
      items.push({ text: '', group: groupName });
      (items[items.length - 1] as { text: string; group?: string; members?: string[] }).members = [...groupItems];
      groupItems.length = 0;
      groupName = undefined;
      continue;
    }
    cur += c;
  }
  flush(cur);
  void tokens;
  const out: Address[] = [];
  for (const item of items as { text: string; group?: string; members?: string[] }[]) {
    if (item.group !== undefined) out.push({ name: item.group, address: '', group: (item.members ?? []).map(parseMailbox) });
    else out.push(parseMailbox(item.text));
  }
  return out;
}

function parseMailbox(text: string): Address {
  const lt = text.lastIndexOf('<');
  const gt = text.lastIndexOf('>');
  if (lt >= 0 && gt > lt) {
    let name = text.slice(0, lt).trim();
    if (name.startsWith('"') && name.endsWith('"') && name.length >= 2) name = name.slice(1, -1).replace(/\\(.)/g, '$1');
    return { name: name || null, address: text.slice(lt + 1, gt).trim() };
  }
  // addr (Comment): the comment is the name in old mailers' style.
  const m = /^([^\s(]+)\s*\((.*)\)\s*$/.exec(text);
  if (m) return { name: m[2] || null, address: m[1] };
  return { name: null, address: text.replace(/\s+/g, '') };
}

function addressValue(list: Address[] | undefined): Value {
  if (!list || !list.length) return null;
  const out: Value[] = [];
  for (const a of list) {
    if (a.group) {
      // RFC 3501 §7.4.2: group start (NIL NIL name NIL), members, group end (NIL NIL NIL NIL).
      out.push([null, null, bin(a.name ?? ''), null]);
      for (const m of a.group) out.push(mailboxValue(m));
      out.push([null, null, null, null]);
    } else out.push(mailboxValue(a));
  }
  return out;
}

function mailboxValue(a: Address): Value {
  const at = a.address.lastIndexOf('@');
  const local = at >= 0 ? a.address.slice(0, at) : a.address;
  const domain = at >= 0 ? a.address.slice(at + 1) : '';
  return [a.name === null ? null : bin(a.name), null, bin(local), domain ? bin(domain) : null];
}

function bin(s: string): Buffer {
  return Buffer.from(s, 'latin1');
}

function hv(node: MimeNode, key: string): Value {
  const v = headerValue(node, key);
  return v === undefined ? null : bin(v);
}

function addrs(node: MimeNode, key: string): Address[] | undefined {
  const v = headerValue(node, key);
  if (v === undefined || !v.trim()) return undefined;
  return parseAddressList(v);
}

export function envelope(node: MimeNode): Value {
  const from = addrs(node, 'from');
  const sender = addrs(node, 'sender') ?? from;
  const replyTo = addrs(node, 'reply-to') ?? from;
  return [
    hv(node, 'date'),
    hv(node, 'subject'),
    addressValue(from),
    addressValue(sender),
    addressValue(replyTo),
    addressValue(addrs(node, 'to')),
    addressValue(addrs(node, 'cc')),
    addressValue(addrs(node, 'bcc')),
    hv(node, 'in-reply-to'),
    hv(node, 'message-id'),
  ];
}

// ---- BODYSTRUCTURE ----------------------------------------------------------------------------------------------

function paramList(params: Record<string, string>, skip: string[] = []): Value {
  const entries = Object.entries(params).filter(([k]) => !skip.includes(k));
  if (!entries.length) return null;
  return entries.flatMap(([k, v]) => [k.toUpperCase(), Buffer.from(v, 'utf8')]);
}

function disposition(node: MimeNode): Value {
  const v = headerValue(node, 'content-disposition');
  if (!v) return null;
  const parsed = libmime.parseHeaderValue(utf8(v));
  const params: Record<string, string> = {};
  for (const [k, val] of Object.entries(parsed.params)) params[k.toLowerCase()] = String(val);
  return [String(parsed.value).toUpperCase(), paramList(params)];
}

function language(node: MimeNode): Value {
  const v = headerValue(node, 'content-language');
  if (!v) return null;
  return v.split(',').map((s) => s.trim()).filter(Boolean);
}

/** BODYSTRUCTURE (extensible = true) or BODY (false), RFC 3501 §7.4.2. */
export function bodystructure(node: MimeNode, extensible: boolean): Value {
  if (node.children.length) {
    const out: Value[] = node.children.map((c) => bodystructure(c, extensible));
    out.push(node.subtype.toUpperCase());
    if (extensible) out.push(paramList(node.params), disposition(node), language(node), hv(node, 'content-location'));
    return out;
  }
  if (node.type === 'multipart') {
    // A multipart without parts (no boundary found): describe it as an empty text part so clients still parse it.
    return bodystructure({ ...node, type: 'text', subtype: 'plain', params: {} }, extensible);
  }
  const encoding = (headerValue(node, 'content-transfer-encoding') ?? '7bit').trim().toUpperCase();
  const out: Value[] = [
    node.type.toUpperCase(),
    node.subtype.toUpperCase(),
    paramList(node.params),
    hv(node, 'content-id'),
    hv(node, 'content-description'),
    encoding,
    node.body.length,
  ];
  if (node.message) out.push(envelope(node.message), bodystructure(node.message, extensible), countLines(node.body));
  else if (node.type === 'text') out.push(countLines(node.body));
  if (extensible) out.push(hv(node, 'content-md5'), disposition(node), language(node), hv(node, 'content-location'));
  return out;
}

export { atom };

// ---- Sections ---------------------------------------------------------------------------------------------------

/** Header lines filtered by field names (HEADER.FIELDS / HEADER.FIELDS.NOT), keeping the blank line at the end. */
export function filterHeader(header: Buffer, fields: string[], not: boolean): Buffer {
  const wanted = new Set(fields.map((f) => f.toLowerCase()));
  const text = header.toString('latin1');
  const lines = text.split(/(?<=\n)(?![ \t])/);
  const out: string[] = [];
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const key = line.slice(0, colon).trim().toLowerCase();
    if (wanted.has(key) !== not) out.push(line.endsWith('\n') ? line : line + '\r\n');
  }
  out.push('\r\n');
  return Buffer.from(out.join(''), 'latin1');
}

/** Decoded text of a message for SEARCH BODY/TEXT: text parts with their transfer encoding and charset undone. */
export function searchableText(node: MimeNode): string {
  if (node.children.length) return node.children.map(searchableText).join('\n');
  if (node.message) return searchableText(node.message);
  if (node.type !== 'text') return '';
  const enc = (headerValue(node, 'content-transfer-encoding') ?? '').trim().toLowerCase();
  let raw: Buffer = node.body;
  if (enc === 'base64') raw = Buffer.from(node.body.toString('latin1').replace(/\s+/g, ''), 'base64');
  else if (enc === 'quoted-printable') raw = decodeQp(node.body.toString('latin1'));
  const charset = (node.params.charset ?? 'utf-8').toLowerCase();
  try {
    return new TextDecoder(charset).decode(raw);
  } catch {
    return raw.toString('utf8');
  }
}

function decodeQp(s: string): Buffer {
  const clean = s.replace(/=\r?\n/g, '');
  const out: number[] = [];
  for (let i = 0; i < clean.length; i++) {
    const c = clean[i];
    if (c === '=' && /^[0-9A-Fa-f]{2}$/.test(clean.slice(i + 1, i + 3))) {
      out.push(parseInt(clean.slice(i + 1, i + 3), 16));
      i += 2;
    } else out.push(clean.charCodeAt(i) & 0xff);
  }
  return Buffer.from(out);
}

/** A header's value decoded for SEARCH (encoded-words, RFC 2047). */
export function decodedHeader(node: MimeNode, key: string): string[] {
  return node.headers.filter((h) => h.key === key).map((h) => {
    try {
      return libmime.decodeWords(utf8(h.value));
    } catch {
      return utf8(h.value);
    }
  });
}
