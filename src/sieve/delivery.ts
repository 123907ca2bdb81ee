/**
 * Sieve at local delivery (issue 15): what happens to one message for one user's mailbox.
 *
 * In order, as Pigeonhole runs `sieve_before` scripts ahead of the user's (RFC 5228 §2.10 semantics across them):
 *   1. the out-of-office IT set for the user (admin API / CLI, src/sieve/out-of-office.ts), as a vacation action;
 *   2. the admin "before" script (config sieve.before), which may `include :global` from sieve.globalDir;
 *   3. the user's active script (Pigeonhole layout: `<home>/.dovecot.sieve` → `sieve/NAME.sieve`).
 * Then the actions are turned into a plan the delivery agent carries out: copies to store (folder, flags, the
 * message as editheader left it), messages to queue (vacation replies, redirects, rejection notices — all through
 * the queue, so DKIM, relay rules and retries apply), and what to remember once it is done (vacation window,
 * RFC 7352 duplicate ids).
 *
 * Never lose mail to a script: a script that does not compile, fails at run time or hits a limit counts as if it
 * had not run — the implicit keep (RFC 5228 §2.10.6) — and the reason is logged. A user without a script gets
 * exactly the delivery they had before.
 *
 * Spam and Junk (the seed's "move to junkmail", mailbox.moveSpamToJunk): the keep of a message the filters marked
 * as spam, implicit or explicit, stores it in Junk. Only a script that files it somewhere (fileinto) puts it
 * elsewhere. Dovecot gets the same with a sieve_before script; here it needs none and holds with or without scripts.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Logger } from '../lib/logger.js';
import type { UserEntry } from '../directory/types.js';
import type { MailboxOwner } from '../store/types.js';
import type { QueueEnvelope } from '../queue/types.js';
import { rfc5322Date } from '../queue/dsn.js';
import { outOfOfficeActive } from './out-of-office.js';
import type { SieveState } from './state.js';
import { buildVacationReply, defaultHandle, encodeHeaderText, headerMap, quotedPrintable, vacationSuppressed, vacationWindowSeconds } from './vacation.js';

const CRLF = '\r\n';

/** An action as delivery understands it (the interpreter's actions are mapped onto these). */
export type PlanAction =
  | { type: 'keep'; flags?: string[]; message?: Buffer }
  | { type: 'fileinto'; mailbox: string; flags?: string[]; create?: boolean; copy?: boolean; message?: Buffer }
  | { type: 'redirect'; address: string; copy?: boolean; message?: Buffer }
  | { type: 'reject'; reason: string; ereject?: boolean }
  | { type: 'discard' }
  | {
      type: 'vacation';
      reason: string;
      subject?: string;
      from?: string;
      addresses?: string[];
      days?: number;
      seconds?: number;
      handle?: string;
      mime?: boolean;
    };

/** What one script run gave. */
export interface ScriptOutcome {
  actions: PlanAction[];
  /** Whether the implicit keep still applies (RFC 5228 §2.10.2: cancelled by fileinto, redirect, discard, reject). */
  implicitKeep: boolean;
  /** The message after editheader (RFC 5293), when the script changed it: what later scripts see. */
  message?: Buffer;
  /** RFC 7352 ids to record once the message is delivered. */
  duplicateIds?: { id: string; seconds: number }[];
}

/** The script to run and the context it runs in. */
export interface ScriptInput {
  kind: 'before' | 'personal';
  path: string;
  text: string;
  message: Buffer;
  envelope: { from: string; to: string };
  user: { login: string; home: string };
  folderExists(name: string): boolean;
  duplicateSeen(id: string, seconds: number): boolean;
  now: Date;
}

/** Runs one script; throws (any error) when it cannot be compiled or run — delivery then keeps the message. */
export type ScriptRunner = (input: ScriptInput) => Promise<ScriptOutcome>;

export interface SieveDeliveryLimits {
  /** Redirects per message and user (Pigeonhole sieve_max_redirects). */
  maxRedirects: number;
  /** Shortest vacation window allowed (RFC 6131 §2: the server may impose a minimum). */
  vacationMinSeconds: number;
  /** Longest vacation window (RFC 5230 §4.1: a server may cap :days). */
  vacationMaxDays: number;
}

export interface SieveDeliveryOptions {
  state: SieveState;
  hostname: string;
  log: Logger;
  /** The user's directory entry, for their addresses (RFC 5230 §4.5); throws TempFailure when AD cannot answer. */
  /** The user of a mailbox, by its AD object when the owner has one (a login may have been reused since). */
  findUser(owner: Extract<MailboxOwner, { kind: 'user' }>): Promise<UserEntry | null>;
  /** The home directory of a mailbox (the one holding Maildir/ and sieve/). */
  home(owner: MailboxOwner): string;
  /** Whether a folder of the mailbox exists (fileinto without :create, RFC 5490 mailboxexists). */
  folderExists(owner: MailboxOwner, folder: string): boolean;
  /** The admin "before" script, read at each delivery (cached by the runner); null when none is configured. */
  beforeScript(): { path: string; text: string } | null;
  /** The user's active script; null when none. */
  activeScript(home: string): Promise<{ path: string; text: string } | null>;
  /** Absent: no Sieve interpreter; only the out-of-office applies. */
  run?: ScriptRunner;
  limits: SieveDeliveryLimits;
  now?: () => Date;
}

export interface LocalDeliveryInput {
  owner: Extract<MailboxOwner, { kind: 'user' }>;
  envelope: Pick<QueueEnvelope, 'id' | 'from' | 'spam'>;
  /** The envelope recipient (RCPT TO or the member/forward address it became). */
  recipient: string;
  message: Buffer;
  /** Where the implicit keep goes: INBOX, or Junk for spam when mailbox.moveSpamToJunk. */
  keepFolder: string;
}

export interface PlannedCopy {
  folder: string;
  /** Maildir flag letters (RFC 5232 system flags). */
  flags: string;
  /** IMAP keywords (RFC 5232 §3: any other flag, e.g. Thunderbird's $label1): letters from dovecot-keywords. */
  keywords: string[];
  message: Buffer;
  /** The message is the one received, unchanged (the spool file can be linked). */
  original: boolean;
}

export interface PlannedMessage {
  kind: 'vacation' | 'redirect' | 'reject';
  /** Envelope sender: '' for vacation replies and rejection notices (RFC 3834 §3.3, RFC 5429 §2.1). */
  from: string;
  to: string;
  message: Buffer;
  /** Redirects keep the original sender, which the agent rewrites with SRS when it leaves our domains. */
  keepsSender?: boolean;
}

export interface DeliveryPlan {
  copies: PlannedCopy[];
  outgoing: PlannedMessage[];
  /** Call once the outgoing messages are queued: records the vacation replies (one per window). */
  sent(): void;
  /** Call once the copies are stored: records the duplicate ids. */
  delivered(): void;
  /** One line for the log and the delivery result: what the scripts decided. */
  summary: string;
}

/** RFC 5232 §3: the system flags a Maildir file name can carry; keywords get letters from the Dovecot keywords file. */
const MAILDIR_FLAG: Record<string, string> = { '\\seen': 'S', '\\flagged': 'F', '\\answered': 'R', '\\draft': 'D', '\\deleted': 'T' };

/** An IMAP flag-keyword is an atom (RFC 3501 §9: no SP, CTL, ( ) { % * " \\ ]); \\Recent and unknown system flags are not. */
const KEYWORD = /^[^\x00-\x20\x7f(){%*"\\\]]+$/;

function maildirFlags(flags: string[] | undefined): { letters: string; keywords: string[]; dropped: string[] } {
  const letters = new Set<string>();
  const keywords: string[] = [];
  const dropped: string[] = [];
  for (const f of flags ?? []) {
    const l = MAILDIR_FLAG[f.toLowerCase()];
    if (l) letters.add(l);
    else if (KEYWORD.test(f)) keywords.push(f);
    else dropped.push(f);
  }
  return { letters: [...letters].sort().join(''), keywords, dropped };
}

/** A message fit for the queue: the headers we add, then the original, unchanged. */
function prepend(lines: string[], message: Buffer): Buffer {
  return Buffer.concat([Buffer.from(lines.map((l) => l + CRLF).join(''), 'utf8'), message]);
}

export class SieveDelivery {
  private readonly log: Logger;
  constructor(private readonly opts: SieveDeliveryOptions) {
    this.log = opts.log.child({ component: 'delivery', part: 'sieve' });
  }

  private now(): Date {
    return this.opts.now?.() ?? new Date();
  }

  async plan(input: LocalDeliveryInput): Promise<DeliveryPlan> {
    const { owner, envelope, recipient } = input;
    const log = this.log.child({ queueId: envelope.id, login: owner.login, to: recipient });
    const now = this.now();
    const home = this.opts.home(owner);
    const actions: PlanAction[] = [];
    let implicitKeep = true;
    let message = input.message;
    const duplicates: { id: string; seconds: number }[] = [];
    const notes: string[] = [];

    // 1. IT's out-of-office: a vacation that does not cancel the keep (RFC 5230 §4: vacation is not a delivery).
    const ooo = this.opts.state.getOutOfOffice(owner.login);
    if (ooo && outOfOfficeActive(ooo, now.getTime())) {
      actions.push({
        type: 'vacation',
        reason: ooo.text,
        ...(ooo.subject !== undefined ? { subject: ooo.subject } : {}),
        days: ooo.days,
        handle: `ooo:${defaultHandle({ subject: ooo.subject, reason: ooo.text })}`,
      });
      notes.push('out-of-office');
    }

    // 2 and 3. The before script, then the user's.
    const scripts: { kind: 'before' | 'personal'; path: string; text: string }[] = [];
    if (this.opts.run) {
      try {
        const before = this.opts.beforeScript();
        if (before) scripts.push({ kind: 'before', ...before });
      } catch (err) {
        log.error({ err }, 'sieve: the before script cannot be read; delivering without it');
      }
      try {
        const active = await this.opts.activeScript(home);
        if (active) scripts.push({ kind: 'personal', ...active });
      } catch (err) {
        log.error({ err }, "sieve: the user's active script cannot be read; keeping the message");
      }
    }
    for (const s of scripts) {
      try {
        const out = await this.opts.run!({
          kind: s.kind,
          path: s.path,
          text: s.text,
          message,
          envelope: { from: envelope.from, to: recipient },
          user: { login: owner.login, home },
          folderExists: (name) => this.opts.folderExists(owner, name),
          duplicateSeen: (id) => this.opts.state.duplicateSeen(owner.login, id, now.getTime()),
          now,
        });
        actions.push(...out.actions);
        if (!out.implicitKeep) implicitKeep = false;
        if (out.message) message = out.message;
        duplicates.push(...(out.duplicateIds ?? []));
        notes.push(`${s.kind} script ${s.path}`);
      } catch (err) {
        // RFC 5228 §2.10.6: a run-time error means the implicit keep; the actions of the failing script are dropped.
        log.warn({ script: s.path, kind: s.kind, err: (err as Error).message }, 'sieve: script failed; the message is kept');
        notes.push(`${s.kind} script failed: ${(err as Error).message}`);
      }
    }

    // The user's addresses only matter to a redirect (to oneself?) and a vacation (RFC 5230 §4.5): asked only then.
    // Most mail meets no script and no out-of-office, and a directory lookup per delivery is CPU on the event loop
    // (issue 11) and, with AD away and the entry not cached, a deferral of mail that needed no answer from AD.
    let addresses = [recipient.toLowerCase()];
    let primary = recipient.toLowerCase();
    if (actions.some((a) => a.type === 'redirect' || a.type === 'vacation')) {
      const user = await this.opts.findUser(owner);
      addresses = [...new Set([recipient.toLowerCase(), ...(user?.addresses ?? [])])];
      primary = user?.primaryAddress ?? primary;
    }

    // Copies: explicit keep and fileinto, deduplicated by folder (RFC 5228 §2.10.3), then the implicit keep.
    // RFC 5293 §7: a copy is stored with the header as editheader had left it when its action ran.
    const copies = new Map<string, { flags: Set<string>; keywords: Map<string, string>; message: Buffer }>();
    const addCopy = (folder: string, flags: string[] | undefined, edited?: Buffer) => {
      const { letters, keywords, dropped } = maildirFlags(flags);
      if (dropped.length) log.info({ folder, flags: dropped }, 'sieve: flags that are not IMAP flags or keywords are not stored');
      const name = folder.toLowerCase() === 'inbox' ? 'INBOX' : folder;
      const c = copies.get(name) ?? { flags: new Set<string>(), keywords: new Map<string, string>(), message: edited ?? message };
      for (const l of letters) c.flags.add(l);
      // Keywords are case-insensitive (RFC 3501 §2.3.2): the first spelling is kept.
      for (const k of keywords) if (!c.keywords.has(k.toLowerCase())) c.keywords.set(k.toLowerCase(), k);
      copies.set(name, c);
    };
    const outgoing: PlannedMessage[] = [];
    const vacations: { sender: string; handle: string; seconds: number }[] = [];
    let redirects = 0;
    let rejected = false;
    for (const a of actions) {
      switch (a.type) {
        case 'keep':
          addCopy(input.keepFolder, a.flags, a.message);
          break;
        case 'fileinto': {
          let folder = a.mailbox;
          // Pigeonhole: fileinto a folder that does not exist, without :create (RFC 5490 §3.2), is an error that
          // ends in the implicit keep — the message goes to INBOX and the log says why.
          if (folder.toLowerCase() !== 'inbox' && !a.create && !this.opts.folderExists(owner, folder)) {
            log.warn({ folder }, 'sieve: fileinto a folder that does not exist (no :create); delivering to INBOX');
            folder = 'INBOX';
          }
          addCopy(folder, a.flags, a.message);
          break;
        }
        case 'discard':
          break;
        case 'redirect': {
          const to = a.address.toLowerCase();
          if (addresses.includes(to)) {
            // A redirect to oneself would come straight back: it is a keep (Pigeonhole does the same).
            addCopy(input.keepFolder, undefined);
            break;
          }
          if (++redirects > this.opts.limits.maxRedirects) {
            log.warn({ to, max: this.opts.limits.maxRedirects }, 'sieve: too many redirects; the message is kept');
            addCopy(input.keepFolder, undefined);
            break;
          }
          // RFC 5228 §4.2 asks implementations to prevent loops: the copy carries our Received and this
          // recipient's Delivered-To, which delivery reads back (a loop through us fails as a loop, never ping-pongs).
          outgoing.push({
            kind: 'redirect',
            from: envelope.from,
            to,
            keepsSender: true,
            message: prepend(
              [`Received: by ${this.opts.hostname} (postern sieve redirect) for <${to}>; ${rfc5322Date(now)}`, `Delivered-To: ${recipient}`],
              a.message ?? input.message,
            ),
          });
          log.info({ redirect: to }, 'sieve: redirected');
          break;
        }
        case 'reject': {
          rejected = true;
          // RFC 5429 §2.1: at delivery a reject is a notice to the envelope sender — never to <> (§2.1.2).
          if (!envelope.from) {
            log.info('sieve: reject of a message from <>: discarded without a notice');
            break;
          }
          outgoing.push({ kind: 'reject', from: '', to: envelope.from, message: this.rejection(input.message, recipient, envelope.from, a.reason, now) });
          log.info({ sender: envelope.from }, 'sieve: rejected; notice queued to the sender');
          break;
        }
        case 'vacation': {
          const v = this.vacation(a, { login: owner.login, sender: envelope.from, message: input.message, addresses, primary, now, spam: envelope.spam === true });
          if (v.reply) {
            outgoing.push({ kind: 'vacation', from: '', to: envelope.from, message: v.reply });
            vacations.push({ sender: envelope.from, handle: v.handle, seconds: v.seconds });
          } else {
            log.info({ sender: envelope.from, why: v.why }, 'sieve: no vacation reply');
          }
          break;
        }
      }
    }
    // RFC 5429 §2.1: reject cancels the implicit keep; so do fileinto, redirect (without :copy) and discard, which the
    // interpreter reports through implicitKeep.
    if (implicitKeep && !rejected) addCopy(input.keepFolder, undefined);

    const planned: PlannedCopy[] = [...copies].map(([folder, c]) => ({
      folder,
      flags: [...c.flags].sort().join(''),
      keywords: [...c.keywords.values()],
      message: c.message,
      original: c.message === input.message,
    }));
    const state = this.opts.state;
    const summary = [
      notes.length ? notes.join(', ') : 'no script',
      planned.length ? `stored in ${planned.map((c) => c.folder).join(', ')}` : 'not stored',
      ...outgoing.map((o) => `${o.kind} to ${o.to}`),
    ].join('; ');
    return {
      copies: planned,
      outgoing,
      summary,
      sent() {
        for (const v of vacations) state.recordVacation(owner.login, v.sender, v.handle, v.seconds, now.getTime());
      },
      delivered() {
        for (const d of duplicates) state.recordDuplicate(owner.login, d.id, d.seconds, now.getTime());
      },
    };
  }

  /** RFC 5230: the reply, or why none is sent. */
  private vacation(
    a: Extract<PlanAction, { type: 'vacation' }>,
    c: { login: string; sender: string; message: Buffer; addresses: string[]; primary: string; now: Date; spam: boolean },
  ): { reply?: Buffer; handle: string; seconds: number; why?: string } {
    const headers = headerMap(c.message);
    const handle = a.handle ?? defaultHandle({ subject: a.subject, from: a.from, reason: a.reason, mime: a.mime });
    const seconds = vacationWindowSeconds(a, { minSeconds: this.opts.limits.vacationMinSeconds, maxDays: this.opts.limits.vacationMaxDays });
    const userAddresses = [...new Set([...c.addresses, ...(a.addresses ?? []).map((x) => x.toLowerCase())])];
    const why = vacationSuppressed({ sender: c.sender, headers, userAddresses, spam: c.spam });
    if (why) return { handle, seconds, why };
    // RFC 5230 §4.2 / RFC 6131 §2: one reply per sender and handle per window; :seconds 0 answers every time.
    if (seconds > 0 && this.opts.state.vacationRecent(c.login, c.sender, handle, c.now.getTime())) {
      return { handle, seconds, why: 'already answered inside the :days window' };
    }
    const reply = buildVacationReply({
      hostname: this.opts.hostname,
      from: a.from ?? c.primary,
      to: c.sender,
      ...(a.subject !== undefined ? { subject: a.subject } : {}),
      reason: a.reason,
      mime: a.mime,
      headers,
      now: c.now,
    });
    return { reply, handle, seconds };
  }

  /**
   * RFC 5429 §2.1.1 / RFC 3798: the rejection notice is an MDN, disposition "deleted", with the reason for a person
   * and the original header section; sent from the null reverse-path so it can cause no further notice.
   */
  private rejection(message: Buffer, recipient: string, sender: string, reason: string, now: Date): Buffer {
    const headers = headerMap(message);
    const boundary = `=_postern_${randomBytes(12).toString('hex')}`;
    const messageId = headers.get('message-id')?.[0]?.match(/<[^<>\s]+>/)?.[0];
    const end = message.indexOf('\r\n\r\n');
    const original = message.subarray(0, end < 0 ? message.length : end + 2);
    const subject = headers.get('subject')?.[0];
    const head = [
      `From: Mail Delivery System <MAILER-DAEMON@${this.opts.hostname}>`,
      `To: <${sender}>`,
      `Subject: ${encodeHeaderText(`Rejected: ${subject ?? ''}`.trimEnd())}`,
      `Date: ${rfc5322Date(now)}`,
      `Message-ID: <reject.${now.getTime().toString(36)}.${randomBytes(4).toString('hex')}@${this.opts.hostname}>`,
      ...(messageId ? [`In-Reply-To: ${messageId}`, `References: ${messageId}`] : []),
      'Auto-Submitted: auto-replied',
      'MIME-Version: 1.0',
      `Content-Type: multipart/report; report-type=disposition-notification;${CRLF} boundary="${boundary}"`,
    ];
    const human = `Your message to <${recipient}> was rejected by the recipient's mail filter.${CRLF}${CRLF}${reason}${CRLF}`;
    const mdn = [
      `Reporting-UA: ${this.opts.hostname}; postern sieve`,
      `Final-Recipient: rfc822; ${recipient}`,
      ...(messageId ? [`Original-Message-ID: ${messageId}`] : []),
      // RFC 5429 §2.1.1: automatic action, sent automatically, the message deleted.
      'Disposition: automatic-action/MDN-sent-automatically; deleted',
    ].join(CRLF);
    const body = [
      `--${boundary}`,
      'Content-Type: text/plain; charset=utf-8',
      'Content-Transfer-Encoding: quoted-printable',
      '',
      quotedPrintable(human),
      `--${boundary}`,
      'Content-Type: message/disposition-notification',
      '',
      mdn,
      '',
      `--${boundary}`,
      'Content-Type: text/rfc822-headers',
      '',
    ].join(CRLF);
    return Buffer.concat([
      Buffer.from(head.join(CRLF) + CRLF + CRLF + body + CRLF, 'utf8'),
      original,
      Buffer.from(`${CRLF}--${boundary}--${CRLF}`, 'utf8'),
    ]);
  }
}

/** A stable id for caching by content (used by the script runner). */
export function scriptKey(path: string, mtimeMs: number, size: number): string {
  return createHash('sha1').update(`${path}\0${mtimeMs}\0${size}`).digest('hex');
}
