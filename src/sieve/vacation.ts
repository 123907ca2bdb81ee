/**
 * Vacation replies done the way RFC 5230 (Sieve vacation), RFC 6131 (vacation-seconds) and RFC 3834
 * (recommendations for automatic responses) ask: when a reply must not be sent, and what the reply looks like.
 * Used for a script's `vacation` action and for the out-of-office IT sets (src/sieve/delivery.ts); the one-per-
 * sender window is kept in src/sieve/state.ts.
 */
import { createHash, randomBytes } from 'node:crypto';
import { decodeWords, headerFields, headerSectionEnd } from '../filters/mime.js';
import { rfc5322Date } from '../queue/dsn.js';

const CRLF = '\r\n';

/** The header fields of a message: lower-case name → unfolded raw values, in order. */
export function headerMap(message: Buffer): Map<string, string[]> {
  const end = headerSectionEnd(message);
  const map = new Map<string, string[]>();
  for (const f of headerFields(message, end)) {
    const value = message
      .subarray(f.valueStart, f.end)
      .toString('utf8')
      .replace(/\r?\n(?=[ \t])/g, '')
      .replace(/\r?\n$/, '')
      .trim();
    const name = f.name.toLowerCase();
    const list = map.get(name) ?? [];
    list.push(value);
    map.set(name, list);
  }
  return map;
}

/** The addresses of an address-list header value (RFC 5322 §3.4), lower-cased; display names and comments skipped. */
export function addressesIn(value: string): string[] {
  const stripped = value
    .replace(/"(?:[^"\\]|\\.)*"/g, ' ')
    .replace(/\((?:[^()\\]|\\.)*\)/g, ' ');
  return [...stripped.matchAll(/[^\s<>,;:"()[\]]+@[^\s<>,;:"()[\]]+/g)].map((m) => m[0].toLowerCase());
}

/** RFC 5230 §4.6 / RFC 3834 §2: local parts of senders that are programs or lists. */
const PROGRAM_SENDER = /^(?:mailer-daemon|listserv|majordomo|owner-.*|.*-request|.*-owner|postmaster|noreply|no-reply|do-not-reply)$/i;

export interface VacationCheck {
  /** The envelope sender ('' for `<>`). */
  sender: string;
  /** The header fields of the incoming message (headerMap). */
  headers: Map<string, string[]>;
  /** Every address of the user (AD: mail, proxyAddresses, …, plus :addresses), lower-case. */
  userAddresses: string[];
  /** The filters marked the message as spam: its sender is most likely forged (a reply would be backscatter). */
  spam?: boolean;
}

/**
 * Why no reply may be sent to this message, or null when one may. The checks are the RFCs' SHOULD NOTs, taken as
 * MUST NOTs: an auto-reply to a list or to another robot is the classic mail loop.
 */
export function vacationSuppressed(c: VacationCheck): string | null {
  // RFC 5230 §4.6 / RFC 3834 §2: never to the null reverse-path (a bounce or another auto-reply).
  if (!c.sender) return 'null sender';
  // RFC 3834 §2 lists junk among what not to answer; Exchange sends no out-of-office to its Junk folder either.
  if (c.spam) return 'message marked as spam';
  const local = c.sender.slice(0, c.sender.lastIndexOf('@')).toLowerCase();
  if (PROGRAM_SENDER.test(local)) return `sender ${c.sender} is a program or a list`;
  const mine = new Set(c.userAddresses.map((a) => a.toLowerCase()));
  // RFC 5230 §4.5: not to oneself.
  if (mine.has(c.sender.toLowerCase())) return 'sender is the user';
  // RFC 3834 §2 / §5: Auto-Submitted other than "no" is a robot's message.
  for (const v of c.headers.get('auto-submitted') ?? []) {
    if (v.split(';')[0].trim().toLowerCase() !== 'no') return `Auto-Submitted: ${v}`;
  }
  // RFC 3834 §2: list mail (RFC 2369 List-* fields, RFC 2919 List-Id) and bulk/junk/list precedence.
  for (const name of c.headers.keys()) {
    if (name === 'list-id' || name.startsWith('list-')) return `list message (${name})`;
  }
  for (const v of c.headers.get('precedence') ?? []) {
    if (/^(bulk|list|junk)$/i.test(v.trim())) return `Precedence: ${v}`;
  }
  // Other robots' usual marks (Exchange, Outlook).
  if ((c.headers.get('x-auto-response-suppress') ?? []).some((v) => /\b(all|oof|autoreply)\b/i.test(v))) return 'X-Auto-Response-Suppress';
  // RFC 5230 §4.5: only when the user is a direct recipient.
  const named = new Set<string>();
  for (const h of ['to', 'cc', 'bcc', 'resent-to', 'resent-cc', 'resent-bcc']) {
    for (const v of c.headers.get(h) ?? []) for (const a of addressesIn(v)) named.add(a);
  }
  if (![...mine].some((a) => named.has(a))) return 'user not a direct recipient (To/Cc/Bcc)';
  return null;
}

/** RFC 5230 §4.2: the default handle identifies the reply by what it says. */
export function defaultHandle(parts: { subject?: string; from?: string; reason: string; mime?: boolean }): string {
  return 'h:' + createHash('sha256').update(JSON.stringify([parts.subject ?? null, parts.from ?? null, parts.reason, !!parts.mime])).digest('hex').slice(0, 32);
}

/** An unstructured header value: as is when ASCII, else one RFC 2047 encoded word per chunk (UTF-8, base64). */
export function encodeHeaderText(text: string): string {
  // eslint-disable-next-line no-control-regex
  const clean = text.replace(/[\r\n]+/g, ' ').replace(/[\x00-\x08\x0b-\x1f\x7f]/g, '');
  if (/^[\x20-\x7e]*$/.test(clean)) return clean;
  const words: string[] = [];
  let chunk = '';
  for (const ch of clean) {
    if (Buffer.byteLength(chunk + ch) > 45) {
      words.push(`=?utf-8?B?${Buffer.from(chunk).toString('base64')}?=`);
      chunk = '';
    }
    chunk += ch;
  }
  if (chunk) words.push(`=?utf-8?B?${Buffer.from(chunk).toString('base64')}?=`);
  return words.join(`${CRLF} `);
}

/** RFC 2045 §6.7 quoted-printable of UTF-8 text, CRLF line ends, lines ≤ 76. */
export function quotedPrintable(text: string): string {
  const lines = text.replace(/\r\n|\r|\n/g, '\n').split('\n');
  return lines
    .map((line) => {
      let out = '';
      let width = 0;
      const bytes = Buffer.from(line, 'utf8');
      for (let i = 0; i < bytes.length; i++) {
        const b = bytes[i];
        const last = i === bytes.length - 1;
        const plain = (b >= 33 && b <= 126 && b !== 61) || ((b === 32 || b === 9) && !last);
        const piece = plain ? String.fromCharCode(b) : `=${b.toString(16).toUpperCase().padStart(2, '0')}`;
        if (width + piece.length > 75) {
          out += `=${CRLF}`;
          width = 0;
        }
        out += piece;
        width += piece.length;
      }
      return out;
    })
    .join(CRLF);
}

export interface VacationReplyInput {
  hostname: string;
  /** From of the reply (RFC 5230 §4.8: :from, else the user's address). */
  from: string;
  /** The envelope sender being answered (RFC 5230 §4.3: the reply goes to the return path). */
  to: string;
  /** :subject; absent: "Auto: " and the original subject (RFC 5230 §4.7). */
  subject?: string;
  reason: string;
  /** :mime: the reason is a MIME entity (its own header fields and body) rather than plain text. */
  mime?: boolean;
  /** The incoming message's header fields (for Subject, Message-ID, References). */
  headers: Map<string, string[]>;
  now?: Date;
}

/** The reply message (CRLF, headers RFC 3834 §3 asks for). */
export function buildVacationReply(v: VacationReplyInput): Buffer {
  const now = v.now ?? new Date();
  const original = v.headers.get('subject')?.[0];
  // RFC 5230 §4.7: the default subject is "Auto:" and the original subject, decoded then encoded again.
  const subject = v.subject ?? `Auto: ${original !== undefined ? decodeWords(original) : ''}`.trimEnd();
  const messageId = v.headers.get('message-id')?.[0]?.match(/<[^<>\s]+>/)?.[0];
  const refs = (v.headers.get('references')?.[0] ?? '').match(/<[^<>\s]+>/g) ?? [];
  const head = [
    `From: <${v.from}>`,
    `To: <${v.to}>`,
    `Subject: ${encodeHeaderText(subject)}`,
    `Date: ${rfc5322Date(now)}`,
    `Message-ID: <vacation.${now.getTime().toString(36)}.${randomBytes(6).toString('hex')}@${v.hostname}>`,
    // RFC 3834 §3.1.3, §3.1.4: the reply names what it answers.
    ...(messageId ? [`In-Reply-To: ${messageId}`, `References: ${[...refs.filter((r) => r !== messageId), messageId].slice(-10).join(`${CRLF} `)}`] : []),
    // RFC 3834 §5.1 / RFC 5230 §5: marks the reply so no other responder answers it.
    'Auto-Submitted: auto-replied',
    'Precedence: bulk',
    'MIME-Version: 1.0',
  ];
  let body: string;
  if (v.mime) {
    // RFC 5230 §4.4 :mime: the reason is the entity's header and body, used as they are (line ends made CRLF).
    body = v.reason.replace(/\r\n|\r|\n/g, CRLF);
    if (!/\r\n\r\n/.test(body)) body = `${body}${CRLF}${CRLF}`;
    return Buffer.from(`${head.join(CRLF)}${CRLF}${body}${body.endsWith(CRLF) ? '' : CRLF}`, 'utf8');
  }
  head.push('Content-Type: text/plain; charset=utf-8', 'Content-Transfer-Encoding: quoted-printable');
  body = quotedPrintable(v.reason);
  return Buffer.from(`${head.join(CRLF)}${CRLF}${CRLF}${body}${CRLF}`, 'utf8');
}

/** RFC 5230 §4.1 / RFC 6131 §2: the window in seconds, clamped to what the server allows. */
export function vacationWindowSeconds(opt: { days?: number; seconds?: number }, limits: { minSeconds: number; maxDays: number }): number {
  const max = limits.maxDays * 86_400;
  const asked = opt.seconds ?? (opt.days ?? 7) * 86_400;
  return Math.min(max, Math.max(limits.minSeconds, asked));
}
