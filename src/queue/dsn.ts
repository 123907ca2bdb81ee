/**
 * Non-delivery reports: RFC 3464 delivery status notifications inside an RFC 6522 multipart/report.
 *
 *   multipart/report; report-type=delivery-status
 *     text/plain               what failed and why, for the person who sent the message
 *     message/delivery-status  the same for programs (RFC 3464 §2.2 per-message and §2.3 per-recipient fields)
 *     text/rfc822-headers      the headers of the returned message (RFC 6522 §4; the body is not returned)
 *
 * The report goes to the envelope sender with the null reverse-path (RFC 5321 §4.5.5) so that it can never cause
 * another report; the scheduler never sends one to a null sender (RFC 5321 §6.1, RFC 3464 §2).
 * Every line ends with CRLF (DESIGN.md §6: never emit a bare CR or LF).
 */
import { randomBytes } from 'node:crypto';
import type { QueueEnvelope, QueueRecipient } from './types.js';

export interface DsnInput {
  /** Our FQDN: Reporting-MTA, the From address and the Message-ID. */
  hostname: string;
  envelope: QueueEnvelope;
  /** The recipients to report (failed, not hidden); see failedRecipients(). */
  recipients: QueueRecipient[];
  /** The returned message; only its header is included. */
  message: Buffer;
  now?: Date;
}

const CRLF = '\r\n';

/** The recipients a DSN names: failed ones, never hidden (Bcc) copies. */
export function failedRecipients(envelope: QueueEnvelope): QueueRecipient[] {
  return envelope.recipients.filter((r) => r.state === 'failed' && !r.hidden);
}

/** RFC 5322 §3.3 date-time, numeric zone (`GMT` is the obsolete form). */
export function rfc5322Date(d: Date): string {
  return d.toUTCString().replace(/GMT$/, '+0000');
}

/** A value fit for one header field: no CR/LF or other controls (header injection), bounded length. */
function clean(text: string, max = 900): string {
  // eslint-disable-next-line no-control-regex
  const s = text.replace(/[\r\n]+/g, ' ').replace(/[\x00-\x08\x0b-\x1f\x7f]/g, '').trim();
  return s.length > max ? s.slice(0, max) + '…' : s;
}

/** `Name: value`, folded at spaces to stay near 78 columns (RFC 5322 §2.2.3). */
function field(name: string, value: string): string {
  const words = clean(value).split(' ').filter(Boolean);
  const lines: string[] = [];
  let line = `${name}:`;
  for (const w of words) {
    if (line.length + 1 + w.length > 78 && line.length > name.length + 1) {
      lines.push(line);
      line = ` ${w}`;
    } else {
      line += ` ${w}`;
    }
  }
  lines.push(line);
  return lines.join(CRLF);
}

/** The header block of a message (up to the empty line), CRLF line endings, bytes kept as they are. */
function headerBlock(message: Buffer): Buffer {
  const text = message.toString('latin1');
  const m = /\r?\n\r?\n/.exec(text);
  const head = (m ? text.slice(0, m.index) : text).replace(/\r\n|\r|\n/g, CRLF);
  return Buffer.from(head.replace(/(\r\n)*$/, '') + CRLF, 'latin1');
}

/** The first value of header `name`, unfolded, for the text part. */
function headerValue(headers: Buffer, name: string): string | undefined {
  const text = headers.toString('utf8').replace(/\r\n[ \t]+/g, ' ');
  const re = new RegExp(`^${name}:[ \\t]*(.*)$`, 'im');
  return re.exec(text)?.[1]?.trim();
}

function eightBit(b: Buffer | string): boolean {
  return typeof b === 'string' ? /[^\x00-\x7f]/.test(b) : b.some((c) => c > 0x7f);
}

const STATUS = /^[245]\.\d{1,3}\.\d{1,3}$/;

/** RFC 3464 §2.3.4 Status: the recipient's, else the enhanced code of its last reply, else a generic failure. */
function statusOf(r: QueueRecipient): string {
  if (r.status && STATUS.test(r.status)) return r.status;
  const m = /^[245]\d\d[ -]([245]\.\d{1,3}\.\d{1,3})\b/.exec(r.lastResult ?? '');
  return m ? m[1] : '5.0.0';
}

/** RFC 3464 §2.3.6: an SMTP reply is "smtp; 550 5.1.1 …"; anything else is our own diagnostic type. */
function diagnostic(r: QueueRecipient): string | undefined {
  if (!r.lastResult) return undefined;
  const text = clean(r.lastResult);
  return /^[245]\d\d([ -]|$)/.test(text) ? `smtp; ${text}` : `X-Postern; ${text}`;
}

function duration(ms: number): string {
  const units: [number, string][] = [
    [86_400_000, 'day'],
    [3_600_000, 'hour'],
    [60_000, 'minute'],
    [1000, 'second'],
  ];
  for (const [size, name] of units) {
    const n = Math.floor(ms / size);
    if (n >= 1) return `${n} ${name}${n === 1 ? '' : 's'}`;
  }
  return 'less than a second';
}

function humanReason(r: QueueRecipient, age: number): string {
  const last = r.lastResult ? clean(r.lastResult) : undefined;
  if (statusOf(r) === '4.4.7') {
    return `could not be delivered for ${duration(age)}; the server gave up` + (last ? ` (last error: ${last})` : '');
  }
  const where = r.remoteMta ? `host ${clean(r.remoteMta)} said: ` : '';
  return last ? `${where}${last}` : 'delivery failed';
}

/** Builds the DSN message for `input.recipients` (Action: failed). */
export function buildDsn(input: DsnInput): Buffer {
  const { hostname, envelope, recipients } = input;
  const now = input.now ?? new Date();
  const arrival = new Date(envelope.receivedAt);
  const lastAttempt = envelope.lastAttemptAt ? new Date(envelope.lastAttemptAt) : now;
  const age = Math.max(0, now.getTime() - arrival.getTime());
  const boundary = `=_postern_${randomBytes(12).toString('hex')}`;
  const original = headerBlock(input.message);

  const subject = headerValue(original, 'subject');
  const human = [
    `This is the mail system at ${hostname}.`,
    '',
    recipients.length === 1
      ? 'Your message could not be delivered to the recipient below.'
      : `Your message could not be delivered to the ${recipients.length} recipients below.`,
    'The reasons are given for each; the headers of your message are attached.',
    '',
    ...(subject !== undefined ? [`  Subject: ${clean(subject, 200)}`] : []),
    `  Queued:  ${rfc5322Date(arrival)} (id ${envelope.id})`,
    '',
    ...recipients.map((r) => `<${clean(r.address, 300)}>: ${humanReason(r, age)}`),
    '',
    'Do not reply to this message: it was written by a program.',
  ].join(CRLF) + CRLF;

  // RFC 3464 §2.2: per-message fields, then one block per recipient, blocks separated by an empty line.
  const perMessage = [
    field('Reporting-MTA', `dns; ${hostname}`),
    field('X-Postern-Queue-ID', envelope.id),
    field('X-Postern-Sender', `rfc822; ${envelope.from}`),
    field('Arrival-Date', rfc5322Date(arrival)),
  ];
  const perRecipient = recipients.map((r) => {
    const lines = [field('Final-Recipient', `rfc822; ${r.address}`)];
    if (r.parent && r.parent !== r.address) lines.push(field('Original-Recipient', `rfc822; ${r.parent}`));
    lines.push(field('Action', 'failed'), field('Status', statusOf(r)));
    if (r.remoteMta) lines.push(field('Remote-MTA', `dns; ${r.remoteMta}`));
    const diag = diagnostic(r);
    if (diag) lines.push(field('Diagnostic-Code', diag));
    lines.push(field('Last-Attempt-Date', rfc5322Date(lastAttempt)));
    return lines.join(CRLF);
  });
  const status = [perMessage.join(CRLF), ...perRecipient].join(CRLF + CRLF) + CRLF;

  const humanCte = eightBit(human) ? '8bit' : '7bit';
  const statusCte = eightBit(status) ? '8bit' : '7bit';
  const headersCte = eightBit(original) ? '8bit' : '7bit';
  const outerCte = [humanCte, statusCte, headersCte].includes('8bit') ? '8bit' : '7bit';

  const head = [
    field('From', `Mail Delivery System <MAILER-DAEMON@${hostname}>`),
    field('To', `<${envelope.from}>`),
    field('Subject', 'Undelivered Mail Returned to Sender'),
    field('Date', rfc5322Date(now)),
    field('Message-ID', `<${envelope.id}.${now.getTime().toString(36)}.${randomBytes(4).toString('hex')}@${hostname}>`),
    // RFC 3834 §5: automatic responders must not answer this.
    field('Auto-Submitted', 'auto-replied'),
    field('MIME-Version', '1.0'),
    `Content-Type: multipart/report; report-type=delivery-status;${CRLF} boundary="${boundary}"`,
    field('Content-Transfer-Encoding', outerCte),
  ].join(CRLF);

  const parts: (string | Buffer)[] = [
    head + CRLF + CRLF,
    'This is a MIME-encapsulated message.' + CRLF + CRLF,
    `--${boundary}${CRLF}Content-Description: Notification${CRLF}Content-Type: text/plain; charset=utf-8${CRLF}` +
      `Content-Transfer-Encoding: ${humanCte}${CRLF}${CRLF}`,
    human,
    CRLF + `--${boundary}${CRLF}Content-Description: Delivery report${CRLF}Content-Type: message/delivery-status${CRLF}` +
      `Content-Transfer-Encoding: ${statusCte}${CRLF}${CRLF}`,
    status,
    CRLF + `--${boundary}${CRLF}Content-Description: Undelivered Message Headers${CRLF}Content-Type: text/rfc822-headers${CRLF}` +
      `Content-Transfer-Encoding: ${headersCte}${CRLF}${CRLF}`,
    original,
    CRLF + `--${boundary}--${CRLF}`,
  ];
  return Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'utf8') : p)));
}
