/**
 * The MIME tree of a stored message for FETCH (ENVELOPE, BODYSTRUCTURE, BODY[section]) and SEARCH. We keep byte
 * offsets into the original buffer, because BODY[section] must return the exact bytes (RFC 3501 §6.4.5), never a
 * re-encoded form.
 */
import libmime from 'libmime';
import { atom, encode, type Value } from './response.js';
import { parseHeaderLines, splitHeader } from '../store/header-fields.js';

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

// splitHeader and parseHeaderLines live in the store (store/header-fields.ts): the folder index caches the header
// fields SEARCH compares, parsed exactly as here.
export { parseHeaderLines };

export function headerValue(node: MimeNode, key: string): string | undefined {
  return node.headers.find((h) => h.key === key)?.value;
}

/** A header value as UTF-8 text (8-bit headers are UTF-8 in practice, RFC 6532). */
function utf8(latin1: string): string {
  return Buffer.from(latin1, 'latin1').toString('utf8');
}

/** Drops RFC 5322 comments (nested, with quoted pairs) outside quoted strings. */
function stripComments(v: string): string {
  let out = '';
  let depth = 0;
  let quoted = false;
  for (let i = 0; i < v.length; i++) {
    const c = v[i];
    if (quoted) {
      out += c;
      if (c === '\\' && i + 1 < v.length) out += v[++i];
      else if (c === '"') quoted = false;
    } else if (depth > 0) {
      if (c === '\\') i++;
      else if (c === '(') depth++;
      else if (c === ')') depth--;
    } else if (c === '(') {
      depth = 1;
      out += ' ';
    } else {
      if (c === '"') quoted = true;
      out += c;
    }
  }
  return out;
}

/**
 * A Content-Type or Content-Disposition value: the leading token and its parameters (RFC 2045 §5.1), names
 * lower-cased, values as sent (raw octets as latin1, quotes removed). RFC 2231 §3 continuations (name*0, name*1)
 * are joined; when a segment is extended (name*0*), the result is the extended form "name*" = charset'lang'%XX,
 * left encoded as Dovecot does, so the client decodes it.
 */
export function parseParameterized(raw: string): { value: string; params: Record<string, string> } {
  const text = stripComments(raw);
  const semi = firstUnquoted(text, ';');
  const value = (semi < 0 ? text : text.slice(0, semi)).replace(/\s+/g, '').toLowerCase();
  const segments = new Map<string, { n: number; extended: boolean; value: string }[]>();
  const order: string[] = [];
  const re = /;\s*([^\s=;"]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;\s"]*)/g;
  for (const m of (semi < 0 ? '' : text.slice(semi)).matchAll(re)) {
    let name = m[1].toLowerCase();
    let v = m[2];
    if (v.startsWith('"')) v = v.slice(1, -1).replace(/\\(.)/g, '$1');
    const c = /^(.*?)\*(\d+)(\*?)$/.exec(name);
    let n = -1;
    let extended = false;
    if (c) {
      name = c[1];
      n = Number(c[2]);
      extended = c[3] === '*';
    } else if (name.endsWith('*')) {
      name = name.slice(0, -1);
      extended = true;
    }
    if (!segments.has(name)) {
      segments.set(name, []);
      order.push(name);
    }
    segments.get(name)!.push({ n, extended, value: v });
  }
  const params: Record<string, string> = {};
  for (const name of order) {
    const segs = segments.get(name)!;
    const plain = segs.find((x) => x.n < 0 && !x.extended);
    const single = segs.find((x) => x.n < 0 && x.extended);
    const parts = segs.filter((x) => x.n >= 0).sort((a, b) => a.n - b.n);
    if (parts.length) {
      const extended = parts.some((x) => x.extended);
      const joined = parts.map((x) => (extended && !x.extended ? encodeURIComponent(x.value) : x.value)).join('');
      params[extended ? name + '*' : name] = joined;
    } else if (single) params[name + '*'] = single.value;
    else if (plain) params[name] = plain.value;
  }
  return { value, params };
}

function firstUnquoted(s: string, ch: string): number {
  let quoted = false;
  for (let i = 0; i < s.length; i++) {
    if (quoted) {
      if (s[i] === '\\') i++;
      else if (s[i] === '"') quoted = false;
    } else if (s[i] === '"') quoted = true;
    else if (s[i] === ch) return i;
  }
  return -1;
}

export function parseMime(buf: Buffer, defaultType = 'text/plain', depth = 0): MimeNode {
  const { header, body } = splitHeader(buf);
  const headers = parseHeaderLines(header);
  const ct = headers.find((h) => h.key === 'content-type')?.value;
  let type = defaultType.split('/')[0];
  let subtype = defaultType.split('/')[1];
  let params: Record<string, string> = {};
  if (ct) {
    const parsed = parseParameterized(ct);
    const m = /^([!#$%&'*+\-.^_`|~0-9a-z]+)\/([!#$%&'*+\-.^_`|~0-9a-z]+)$/.exec(parsed.value);
    // RFC 2045 §5.2: a Content-Type we cannot read counts as absent (the default type, no parameters).
    if (m) {
      type = m[1];
      subtype = m[2];
      params = parsed.params;
    }
  }
  const node: MimeNode = { header, body, headers, type, subtype, params, children: [] };
  // Deeply nested messages are a denial-of-service vector: treat anything past 20 levels as a leaf.
  if (depth > 20) return node;
  if (type === 'multipart') {
    const childDefault = subtype === 'digest' ? 'message/rfc822' : 'text/plain';
    if (params.boundary) for (const part of splitMultipart(body, params.boundary)) node.children.push(parseMime(part, childDefault, depth + 1));
    // A multipart must have a part (RFC 2046 §5.1.1): without a boundary or any part, it gets one empty text/plain
    // part, as in Dovecot, so BODYSTRUCTURE stays a multipart and [1] is that (empty) part.
    if (!node.children.length) node.children.push(parseMime(Buffer.alloc(0), 'text/plain', depth + 1));
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

/**
 * The part at a path (RFC 3501 §6.4.5 section numbering). A message that is not multipart is its own part 1; a
 * multipart's parts are numbered from 1; the parts of a MESSAGE/RFC822 part are the parts of the message it holds,
 * so for a message whose body is message/rfc822, [1] is that whole encapsulated message and [1.1] its part 1.
 */
export function findPart(root: MimeNode, path: number[]): MimeNode | undefined {
  let parts = partsOf(root);
  let node: MimeNode | undefined;
  for (let i = 0; i < path.length; i++) {
    node = parts[path[i] - 1];
    if (!node) return undefined;
    if (i + 1 === path.length) break;
    if (node.children.length) parts = node.children;
    else if (node.message) parts = partsOf(node.message);
    else return undefined;
  }
  return node;
}

function partsOf(message: MimeNode): MimeNode[] {
  return message.children.length ? message.children : [message];
}

/**
 * Lines of a body for BODYSTRUCTURE (RFC 3501 body-fld-lines): its line ends. A last line without one (the CRLF
 * before a boundary belongs to the boundary, RFC 2046 §5.1.1) is not counted, as in Dovecot and Cyrus.
 */
function countLines(b: Buffer): number {
  // indexOf is native; iterating a Buffer byte by byte was most of BODYSTRUCTURE's time.
  let n = 0;
  for (let i = b.indexOf(0x0a); i >= 0; i = b.indexOf(0x0a, i + 1)) n++;
  return n;
}

// ---- ENVELOPE ---------------------------------------------------------------------------------------------------

/** One address of an address list (RFC 5322 §3.4), or a group with its members. Strings are the raw header text. */
export interface Address {
  /** display-name, or the comment of an addr-spec in the old style "a@b (Name)"; for a group, the group's name. */
  name: string | null;
  /** The obsolete source route, "@r1,@r2" (RFC 5322 §4.4 obs-route): the adl of RFC 3501 §7.4.2. */
  route: string | null;
  local: string;
  domain: string;
  group?: Address[];
}

export type AddrToken = { kind: 'word'; text: string; quoted: boolean } | { kind: 'comment'; text: string } | { kind: 'special'; text: string };

/**
 * RFC 5322 §3.2 lexical tokens: quoted strings, comments (nested), domain literals, specials and atoms. ENVELOPE keeps
 * dots inside atoms (a dot-atom, or obs-phrase's "John Q. Public", is one word); `moreSpecials` (SEARCH's address
 * text passes ".)]\\") makes those characters specials of their own.
 */
export function addressTokens(text: string, moreSpecials = ''): AddrToken[] {
  const specials = '<>@,;:' + moreSpecials;
  const atomEnd = ' \t\r\n"([' + specials;
  const out: AddrToken[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === ' ' || c === '\t' || c === '\r' || c === '\n') {
      i++;
    } else if (c === '"') {
      let s = '';
      i++;
      while (i < text.length && text[i] !== '"') {
        if (text[i] === '\\' && i + 1 < text.length) i++;
        s += text[i++];
      }
      i++;
      out.push({ kind: 'word', text: s, quoted: true });
    } else if (c === '(') {
      let depth = 1;
      let s = '';
      i++;
      while (i < text.length && depth > 0) {
        const d = text[i];
        if (d === '\\' && i + 1 < text.length) {
          s += text[i + 1];
          i += 2;
          continue;
        }
        if (d === '(') depth++;
        else if (d === ')' && --depth === 0) break;
        s += d;
        i++;
      }
      i++;
      out.push({ kind: 'comment', text: s.trim() });
    } else if (c === '[') {
      const end = text.indexOf(']', i);
      const stop = end < 0 ? text.length : end + 1;
      out.push({ kind: 'word', text: text.slice(i, stop), quoted: false });
      i = stop;
    } else if (specials.includes(c)) {
      out.push({ kind: 'special', text: c });
      i++;
    } else {
      let j = i;
      while (j < text.length && !atomEnd.includes(text[j])) j++;
      // A stray ")" or "]" is part of the atom rather than an endless loop.
      if (j === i) j++;
      out.push({ kind: 'word', text: text.slice(i, j), quoted: false });
      i = j;
    }
  }
  return out;
}

/**
 * An RFC 5322 address-list (§3.4) as ENVELOPE needs it (RFC 3501 §7.4.2): groups with their members, source routes
 * (obs-route, kept as the adl), display names or old-style comment names. Empty list elements (obs-addr-list) and a
 * group holding only a comment (`group2: (foo) ;`) have no members.
 */
export function parseAddressList(text: string): Address[] {
  const toks = addressTokens(text);
  let pos = 0;
  const peek = () => toks[pos];
  const isSpecial = (t: AddrToken | undefined, s: string) => t?.kind === 'special' && t.text === s;

  /** One mailbox, or null when the element is empty; stops before "," ";" or the end. */
  const mailbox = (inGroup: boolean): Address | Address[] | null => {
    const phrase: AddrToken[] = [];
    let comment: string | null = null;
    for (;;) {
      const t = peek();
      if (!t) break;
      if (t.kind === 'comment') {
        comment = t.text;
        pos++;
        continue;
      }
      if (t.kind === 'word') {
        phrase.push(t);
        pos++;
        continue;
      }
      break;
    }
    const t = peek();
    if (isSpecial(t, ':') && !inGroup) {
      // group = display-name ":" [group-list] ";"
      pos++;
      const members: Address[] = [];
      while (pos < toks.length && !isSpecial(peek(), ';')) {
        if (isSpecial(peek(), ',')) {
          pos++;
          continue;
        }
        const before = pos;
        const m = mailbox(true);
        if (m && !Array.isArray(m)) members.push(m);
        if (pos === before) pos++;
      }
      if (isSpecial(peek(), ';')) pos++;
      return [{ name: phrase.map((p) => p.text).join(' '), route: null, local: '', domain: '', group: members }];
    }
    if (isSpecial(t, '<')) {
      // name-addr = [display-name] angle-addr; angle-addr = "<" [obs-route] addr-spec ">"
      pos++;
      const routes: string[] = [];
      const inner: AddrToken[] = [];
      while (pos < toks.length && !isSpecial(peek(), '>')) {
        const u = toks[pos++];
        if (u.kind === 'comment') continue;
        inner.push(u);
      }
      if (isSpecial(peek(), '>')) pos++;
      let k = 0;
      const colon = inner.findIndex((u) => isSpecial(u, ':'));
      if (colon >= 0 && isSpecial(inner[0], '@')) {
        for (let r = 0; r < colon; r++) {
          if (isSpecial(inner[r], '@') && inner[r + 1]?.kind === 'word') routes.push('@' + inner[r + 1].text);
        }
        k = colon + 1;
      }
      const spec = addrSpec(inner.slice(k));
      for (;;) {
        const u = peek();
        if (u?.kind === 'comment') {
          if (comment === null) comment = u.text;
          pos++;
        } else if (u?.kind === 'word') pos++;
        else break;
      }
      // An empty display name (`"" <a@b>`) is no name.
      const name = phrase.map((p) => p.text).join(' ') || null;
      return { name, route: routes.length ? routes.join(',') : null, ...spec };
    }
    // addr-spec = local-part "@" domain, with an optional trailing comment as the name.
    const rest: AddrToken[] = [...phrase];
    while (pos < toks.length) {
      const u = peek();
      if (isSpecial(u, ',') || isSpecial(u, ';') || (isSpecial(u, ':') && !inGroup)) break;
      pos++;
      if (u.kind === 'comment') {
        comment = u.text;
        continue;
      }
      rest.push(u);
    }
    if (!rest.length) return null;
    return { name: comment || null, route: null, ...addrSpec(rest) };
  };

  const out: Address[] = [];
  while (pos < toks.length) {
    const t = peek();
    if (isSpecial(t, ',') || isSpecial(t, ';') || isSpecial(t, '>')) {
      pos++;
      continue;
    }
    const before = pos;
    const m = mailbox(false);
    if (Array.isArray(m)) out.push(...m);
    else if (m) out.push(m);
    if (pos === before) pos++;
  }
  return out;
}

/** local-part "@" domain from tokens; the last "@" separates them (a quoted local part may contain one). */
function addrSpec(toks: AddrToken[]): { local: string; domain: string } {
  const at = toks.map((t) => t.kind === 'special' && t.text === '@').lastIndexOf(true);
  const text = (ts: AddrToken[]) => ts.filter((t) => t.kind !== 'comment').map((t) => (t.kind === 'word' && t.quoted && /[\s"\\@,;:<>()[\]]/.test(t.text) ? `"${t.text.replace(/[\\"]/g, '\\$&')}"` : t.text)).join('');
  if (at < 0) return { local: text(toks), domain: '' };
  return { local: text(toks.slice(0, at)), domain: text(toks.slice(at + 1)) };
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
  // RFC 3501 §9 env-from etc.: "(" 1*address ")" — addresses follow each other without a space.
  return adjoined(out);
}

function mailboxValue(a: Address): Value {
  // A host of NIL means group syntax (RFC 3501 §7.4.2), so a mailbox without a domain gets an empty one.
  return [a.name === null ? null : bin(a.name), a.route === null ? null : bin(a.route), bin(a.local), bin(a.domain)];
}

/** A parenthesized list whose items are written without separating spaces (RFC 3501 §9 body-type-mpart, env-*). */
function adjoined(items: Value[], tail: Value[] = []): Value {
  const inner = Buffer.concat([...items.map(encode), ...tail.flatMap((t) => [Buffer.from(' '), encode(t)])]);
  return atom('(' + inner.toString('latin1') + ')');
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
  return entries.flatMap(([k, v]) => [k.toUpperCase(), Buffer.from(v, 'latin1')]);
}

function disposition(node: MimeNode): Value {
  const v = headerValue(node, 'content-disposition');
  if (!v) return null;
  const parsed = parseParameterized(v);
  if (!parsed.value) return null;
  return [parsed.value.toUpperCase(), paramList(parsed.params)];
}

function language(node: MimeNode): Value {
  const v = headerValue(node, 'content-language');
  if (!v) return null;
  return v.split(',').map((s) => s.trim()).filter(Boolean);
}

/**
 * BODYSTRUCTURE (extensible = true) or BODY (false), RFC 3501 §7.4.2 and the §9 grammar: a multipart is its parts
 * one after the other with no space between them (body-type-mpart = 1*body SP media-subtype), then the subtype and
 * the extension data (body-ext-mpart: parameters, disposition, language, location); a single part has its basic
 * fields, then the envelope, body and line count for MESSAGE/RFC822 (body-type-msg) or the line count for TEXT
 * (body-type-text), then the extension data (body-ext-1part: MD5, disposition, language, location).
 */
export function bodystructure(node: MimeNode, extensible: boolean): Value {
  if (node.children.length) {
    const tail: Value[] = [node.subtype.toUpperCase()];
    if (extensible) tail.push(paramList(node.params), disposition(node), language(node), hv(node, 'content-location'));
    return adjoined(
      node.children.map((c) => bodystructure(c, extensible)),
      tail,
    );
  }
  // RFC 2045 §6.1: "7BIT" when absent; only the mechanism token counts (a comment after it is not part of it).
  const cte = /^[^\s;(]+/.exec((headerValue(node, 'content-transfer-encoding') ?? '').trim())?.[0];
  const encoding = (cte ?? '7bit').toUpperCase();
  // RFC 2045 §5.2 / RFC 2046 §4.1.2: a text part without a charset is US-ASCII; say so, as Dovecot does.
  const params = node.type === 'text' && node.params.charset === undefined ? { ...node.params, charset: 'us-ascii' } : node.params;
  const out: Value[] = [
    node.type.toUpperCase(),
    node.subtype.toUpperCase(),
    paramList(params),
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
