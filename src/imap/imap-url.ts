/**
 * IMAP URLs as URLAUTH uses them (RFC 5092 with RFC 4467 §2 and RFC 5550): a URL naming one message or one part of
 * it, with an access identifier and, once GENURLAUTH has signed it, the mechanism and token:
 *
 *   imap://user[;AUTH=*]@host[:port]/mailbox[;UIDVALIDITY=n]/;UID=n[/;SECTION=s][/;PARTIAL=o[.l]]
 *          [;EXPIRE=date-time];URLAUTH=access[:mechanism:token]
 *
 * Parameter names are case-insensitive. The "rump" (RFC 4467 §2: everything up to and including the access
 * identifier) is kept exactly as the client sent it: the token is computed over those bytes, so any change to the
 * URL, even of case, makes it invalid.
 */
import { parseFetchAtt, type BodySection } from './parser.js';

export type UrlAccess =
  | { kind: 'anonymous' }
  | { kind: 'authuser' }
  | { kind: 'user'; user: string }
  | { kind: 'submit'; user: string };

export interface ImapUrl {
  /** The userid of the mailbox owner (iuserinfo), %-decoded. */
  user: string;
  host: string;
  port?: number;
  /** The mailbox name, %-decoded UTF-8 (RFC 5092 §3.1); INBOX in capitals. */
  mailbox: string;
  uidValidity?: number;
  uid: number;
  /** The section as BODY[section] would name it ('' for the whole message). */
  section: string;
  body: BodySection;
  /** RFC 5550 §3 / RFC 5092 §3.3 ";PARTIAL=offset[.length]". */
  partial?: { start: number; length?: number };
  /** RFC 4467 §2.1.1 ";EXPIRE=": the URL is not valid after it. */
  expire?: Date;
  access?: UrlAccess;
  /** Everything up to and including the access identifier, as received. */
  rump: string;
  mechanism?: string;
  /** The token, lower-case hex. */
  token?: string;
}

export class UrlError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UrlError';
  }
}

function decode(s: string, what: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw new UrlError(`invalid %-encoding in ${what}`);
  }
}

const NZ_NUMBER = /^[1-9]\d{0,9}$/;

function nz(s: string, what: string): number {
  const n = Number(s);
  if (!NZ_NUMBER.test(s) || n > 0xffffffff) throw new UrlError(`invalid ${what}`);
  return n;
}

/** RFC 3339 date-time (RFC 4467 §2.1.1 `expire = ";EXPIRE=" date-time`). */
function parseDateTime(s: string): Date {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})$/i.exec(s);
  if (!m) throw new UrlError('invalid EXPIRE date-time');
  const d = new Date(s.toUpperCase());
  if (Number.isNaN(d.getTime())) throw new UrlError('invalid EXPIRE date-time');
  return d;
}

function parseAccess(s: string): UrlAccess {
  const lower = s.toLowerCase();
  if (lower === 'anonymous') return { kind: 'anonymous' };
  if (lower === 'authuser') return { kind: 'authuser' };
  const m = /^(user|submit)\+(.+)$/i.exec(s);
  if (!m) throw new UrlError('invalid access identifier');
  const user = decode(m[2], 'access identifier');
  return m[1].toLowerCase() === 'user' ? { kind: 'user', user } : { kind: 'submit', user };
}

/**
 * Parses an IMAP URL naming a message (a UID is required: RFC 4467 §2 `authimapurl` ends in `imessagepart`).
 * `requireAuth`: 'rump' for GENURLAUTH (access identifier, no token), 'full' for URLFETCH (token too).
 */
export function parseImapUrl(url: string, requireAuth: 'rump' | 'full'): ImapUrl {
  const m = /^imap:\/\/([^/]*)\/(.*)$/is.exec(url);
  if (!m) throw new UrlError('not an absolute IMAP URL');
  const [, authority, path] = m;
  // RFC 5092 §3.2: iuserinfo "@" host; RFC 4467 §2 requires the user (authimapurl = "imap://" enc-user ...).
  const at = authority.lastIndexOf('@');
  if (at <= 0) throw new UrlError('the URL names no user');
  const userinfo = authority.slice(0, at);
  const hostport = authority.slice(at + 1);
  const auth = /;AUTH=/i.exec(userinfo);
  const encUser = auth ? userinfo.slice(0, auth.index) : userinfo;
  if (!encUser || /[;/]/.test(encUser)) throw new UrlError('invalid user');
  const user = decode(encUser, 'user');
  const hp = /^(\[[^\]]+\]|[^:[\]]+)(?::(\d{1,5}))?$/.exec(hostport);
  if (!hp) throw new UrlError('invalid host');
  const host = hp[1].replace(/^\[|\]$/g, '').toLowerCase();
  const port = hp[2] !== undefined ? Number(hp[2]) : undefined;

  // The mailbox ends at the first ';' (RFC 5092 bchar has no ';'); before ";UID=" comes a '/'.
  const semi = path.indexOf(';');
  if (semi < 0) throw new UrlError('the URL names no message');
  const head = path.slice(0, semi);
  const params = path.slice(semi + 1).split(';');
  let mailboxRaw = head;
  let prevSlash = false;
  if (head.endsWith('/')) {
    mailboxRaw = head.slice(0, -1);
    prevSlash = true;
  }
  if (!mailboxRaw) throw new UrlError('the URL names no mailbox');
  let mailbox = decode(mailboxRaw, 'mailbox');
  if (mailbox.toUpperCase() === 'INBOX') mailbox = 'INBOX';
  else if (/^INBOX\//i.test(mailbox)) mailbox = 'INBOX' + mailbox.slice(5);

  const out: Partial<ImapUrl> & { user: string; host: string; mailbox: string } = { user, host, mailbox, section: '' };
  if (port !== undefined) out.port = port;
  // Order (RFC 5092 §7, RFC 4467 §2): UIDVALIDITY, /UID, /SECTION, /PARTIAL, EXPIRE, URLAUTH.
  const order = ['UIDVALIDITY', 'UID', 'SECTION', 'PARTIAL', 'EXPIRE', 'URLAUTH'];
  const slashed = new Set(['UID', 'SECTION', 'PARTIAL']);
  let last = -1;
  let rumpEnd = -1;
  let offset = semi + 1;
  for (let i = 0; i < params.length; i++) {
    let p = params[i];
    const start = offset;
    offset += p.length + 1;
    const nextSlash = p.endsWith('/') && i < params.length - 1;
    if (nextSlash) p = p.slice(0, -1);
    const eq = p.indexOf('=');
    if (eq <= 0) throw new UrlError('invalid URL parameter');
    const name = p.slice(0, eq).toUpperCase();
    const value = p.slice(eq + 1);
    const pos = order.indexOf(name);
    if (pos < 0 || pos <= last) throw new UrlError(`unexpected ;${name}=`);
    if (slashed.has(name) !== prevSlash) throw new UrlError(`misplaced ;${name}=`);
    last = pos;
    prevSlash = nextSlash;
    switch (name) {
      case 'UIDVALIDITY':
        out.uidValidity = nz(value, 'UIDVALIDITY');
        break;
      case 'UID':
        out.uid = nz(value, 'UID');
        break;
      case 'SECTION':
        out.section = decode(value, 'section');
        if (!out.section) throw new UrlError('empty section');
        break;
      case 'PARTIAL': {
        const pm = /^(\d{1,10})(?:\.([1-9]\d{0,9}))?$/.exec(value);
        if (!pm) throw new UrlError('invalid PARTIAL');
        out.partial = { start: Number(pm[1]) };
        if (pm[2] !== undefined) out.partial.length = Number(pm[2]);
        break;
      }
      case 'EXPIRE':
        out.expire = parseDateTime(decode(value, 'EXPIRE'));
        break;
      case 'URLAUTH': {
        if (i !== params.length - 1 || nextSlash) throw new UrlError('URLAUTH must end the URL');
        // access [":" mechanism ":" token]; the access identifier itself has no ':' (enc-user is achar only).
        const parts = value.split(':');
        if (parts.length !== 1 && parts.length !== 3) throw new UrlError('invalid URLAUTH');
        out.access = parseAccess(parts[0]);
        rumpEnd = start + 'URLAUTH='.length + parts[0].length;
        if (parts.length === 3) {
          if (!/^[A-Za-z0-9.-]+$/.test(parts[1])) throw new UrlError('invalid URLAUTH mechanism');
          // RFC 4467 §2: enc-urlauth = 32*HEXDIG.
          if (!/^[0-9A-Fa-f]{32,}$/.test(parts[2])) throw new UrlError('invalid URLAUTH token');
          out.mechanism = parts[1].toUpperCase();
          out.token = parts[2].toLowerCase();
        }
        break;
      }
    }
  }
  if (out.uid === undefined) throw new UrlError('the URL names no message (;UID=)');
  if (!out.access) throw new UrlError('the URL has no ;URLAUTH=');
  if (requireAuth === 'rump' && out.token !== undefined) throw new UrlError('the URL already has a token');
  if (requireAuth === 'full' && out.token === undefined) throw new UrlError('the URL has no token');
  let body: BodySection;
  try {
    const att = parseFetchAtt(`BODY.PEEK[${out.section}]`);
    if (att.kind !== 'section') throw new Error('not a section');
    body = att.section;
  } catch {
    throw new UrlError('invalid section');
  }
  const rumpStart = 'imap://'.length + authority.length + 1;
  return { ...(out as ImapUrl), body, rump: url.slice(0, rumpStart + rumpEnd) };
}
