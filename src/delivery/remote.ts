/**
 * Remote delivery over SMTP (the `relay/smtp` of the seed's maillog): to the recipients' MX hosts, to a relay
 * domain's next hop, or — when `smarthost.enabled` — everything to the smarthost. One DeliveryResult per recipient.
 *
 * Choices, each one a rule some MTA learned the hard way:
 * - Per recipient outcome from the RCPT reply; a MAIL FROM or DATA-stage reply applies to every recipient it covers.
 * - A temporary failure (no connection, 4xx greeting, 4xx to MAIL/RCPT/DATA) is retried on the next MX host or
 *   address in the same attempt, like Postfix; 2xx and 5xx are final. What is still temporary after the last host
 *   is a tempfail for the queue to retry later.
 * - A 5xx greeting or HELO means "this host does not want to talk to us", not "the recipient does not exist":
 *   the host is skipped, and if it was the last one the recipients are deferred (Postfix smtp_skip_5xx_greeting).
 * - TLS to MX hosts and relay next hops is opportunistic (RFC 7435, RFC 3207): STARTTLS when advertised, the
 *   certificate is not verified (there is no name to verify it against that an attacker could not also change,
 *   short of DANE/MTA-STS). When the server refuses STARTTLS (454) the session goes on in plain text; when the
 *   TLS handshake itself fails the same address is retried once in plain text on a new connection. Refusing to
 *   fall back would not stop an active attacker (who can strip STARTTLS from EHLO anyway) but would stop mail to
 *   every server with a broken TLS stack; this is Postfix's `smtp_tls_security_level = may`.
 * - The smarthost is different: it gets our credentials, so its TLS mode is enforced (`starttls` = STARTTLS
 *   required, `tls` = implicit TLS) and its certificate IS verified (system CAs plus `smarthost.caFile`; off only
 *   with `smarthost.verify: no`).
 * - AUTH, TLS and credential problems at the smarthost are temporary: a wrong password is fixed by the admin, it
 *   must not bounce the queue.
 * - The message goes out as stored (already CRLF). nodemailer's DataStream dot-stuffs lines starting with "." and
 *   turns any bare CR or LF into CRLF (so "\n.\n" can never end DATA early downstream: SMTP smuggling).
 */
import { isIP } from 'node:net';
import { readFileSync } from 'node:fs';
import { rootCertificates, type ConnectionOptions } from 'node:tls';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import type { Config } from '../config/schema.js';
import type { Logger } from '../lib/logger.js';
import type { DeliveryResult } from '../queue/types.js';
import type { Settings } from '../settings/store.js';
import { parseNexthop } from '../settings/validate.js';
import { MxError, MxResolver, addressLiteral } from './mx.js';
import type { TraceRecorder } from '../trace/types.js';

export interface RemoteJob {
  queueId: string;
  /** MAIL FROM; '' is the null reverse-path `<>`. */
  from: string;
  recipients: string[];
  /** The message, CRLF line endings. */
  message: Buffer;
  /** `host[:port]` of a relay domain: that host is used as is, no MX lookup (RFC 5321 §5.1). */
  nexthop?: string;
}

export interface RemoteDeliveryOptions {
  settings: Pick<Settings, 'get'>;
  /** Our FQDN: EHLO name unless `smtp.heloHost` is set. */
  hostname: string;
  config: { delivery: Config['delivery']; dns: Config['dns'] };
  log: Logger;
  mx?: MxResolver;
  /** Extra TLS options for the smarthost (e.g. `{ ca }` for a private CA). Its certificate is verified. */
  smarthostTls?: ConnectionOptions;
  /** Inactivity limit once connected; default 10 minutes (RFC 5321 §4.5.3.2.6: DATA termination). */
  socketTimeoutMs?: number;
  /** Recipients per SMTP transaction (Postfix smtp_destination_recipient_limit); default 50. */
  maxRecipientsPerSession?: number;
  /** Addresses tried for one batch of recipients (Postfix smtp_mx_address_limit); default 5. */
  maxAddresses?: number;
  /** Destinations (domains) delivered at once for one job; default 4. */
  concurrency?: number;
  /** Message trace: one `attempt` event per SMTP session (host, TLS, the reply for each recipient). */
  trace?: TraceRecorder;
}

/** How TLS is used on one connection. */
type TlsMode = 'opportunistic' | 'plain' | 'starttls' | 'tls' | 'none';

/** One place to connect to. */
interface Candidate {
  /** Name for logs, DSNs (remoteMta) and TLS SNI. */
  host: string;
  address: string;
  port: number;
  tls: TlsMode;
  auth?: { user: string; pass: string };
  /** The smarthost: certificate verified (unless smarthost.verify is off), AUTH required when configured. */
  smarthost?: boolean;
  /** TLS options of the smarthost, from smarthost.caFile / smarthost.verify. */
  smarthostTls?: ConnectionOptions;
}

/** A destination is where one group of recipients goes: the smarthost, a next hop, or one domain's MX hosts. */
interface Destination {
  label: string;
  recipients: string[];
  candidates: () => Promise<Candidate[]>;
}

type Failure = Extract<DeliveryResult, { outcome: 'tempfail' | 'bounce' }>;

interface SessionOutcome {
  results: Map<string, DeliveryResult>;
  tls: boolean;
  /** The TLS handshake failed on an opportunistic connection: try the same address again without TLS. */
  retryPlain?: boolean;
}

/** What nodemailer puts on its errors. */
interface SmtpClientError extends Error {
  code?: string;
  response?: string;
  responseCode?: number;
  command?: string;
  recipient?: string;
  rejectedErrors?: SmtpClientError[];
  timeoutType?: string;
  /** The Node.js code under nodemailer's (ECONNREFUSED, DEPTH_ZERO_SELF_SIGNED_CERT …). */
  originalCode?: string;
}

/** nodemailer keeps the envelope of the transaction in flight here; used to keep per-recipient answers when DATA fails. */
interface EnvelopeState {
  accepted?: string[];
  rejectedErrors?: SmtpClientError[];
}

const noop = () => {};

/** "250-first\n250 second" → "250 first second": one line for logs and DSNs. */
export function flattenReply(reply: string): string {
  return reply
    .split(/\r?\n/)
    .map((line, i) => (i === 0 ? line : line.replace(/^\d{3}[ -]/, '')).trim())
    .filter(Boolean)
    .join(' ');
}

/** The RFC 3463 status of a reply ("550 5.1.1 …" → 5.1.1), or the class default (5.0.0 / 4.0.0). */
export function statusOf(code: number, reply: string): string {
  const m = /^\d{3}[ -]([245])\.(\d{1,3})\.(\d{1,3})\b/.exec(reply);
  const cls = String(Math.floor(code / 100));
  if (m && m[1] === cls) return `${m[1]}.${m[2]}.${m[3]}`;
  return `${cls}.0.0`;
}

function fromReply(recipient: string, code: number, reply: string, remoteMta: string): DeliveryResult {
  const detail = flattenReply(reply);
  if (code >= 200 && code < 300) return { recipient, outcome: 'delivered', detail, remoteMta };
  return { recipient, outcome: code >= 500 ? 'bounce' : 'tempfail', code, status: statusOf(code, detail), detail, remoteMta };
}

function temp(recipient: string, code: number, status: string, detail: string, remoteMta?: string): Failure {
  return { recipient, outcome: 'tempfail', code, status, detail, ...(remoteMta ? { remoteMta } : {}) };
}

function bounce(recipient: string, code: number, status: string, detail: string, remoteMta?: string): Failure {
  return { recipient, outcome: 'bounce', code, status, detail, ...(remoteMta ? { remoteMta } : {}) };
}

function domainOf(address: string): string {
  const at = address.lastIndexOf('@');
  return at < 0 ? '' : address.slice(at + 1).toLowerCase();
}

function hasNonAscii(s: string): boolean {
  return /[^\x00-\x7f]/.test(s);
}

function has8bit(buf: Buffer): boolean {
  for (let i = 0; i < buf.length; i++) if (buf[i] > 0x7f) return true;
  return false;
}

function chunk<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** Runs a nodemailer callback operation, failing as soon as the connection reports an error or ends. */
function run<T>(conn: SMTPConnection, start: (cb: (err?: Error | null, value?: T) => void) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let done = false;
    const finish = (err: Error | null | undefined, value?: T) => {
      if (done) return;
      done = true;
      conn.removeListener('error', onError);
      conn.removeListener('end', onEnd);
      if (err) reject(err);
      else resolve(value as T);
    };
    const onError = (err: Error) => finish(err);
    const onEnd = () => finish(Object.assign(new Error('Connection closed unexpectedly'), { code: 'ECONNECTION' }));
    conn.on('error', onError);
    conn.on('end', onEnd);
    try {
      start((err, value) => finish(err ?? null, value));
    } catch (err) {
      finish(err as Error);
    }
  });
}

/**
 * Addresses of a host the admin configured (smarthost, relay next hop). Not finding it is a configuration error
 * the admin can fix within the queue lifetime, so it defers rather than bounces.
 */
async function configuredHost(mx: MxResolver, host: string): Promise<string[]> {
  try {
    return await mx.addressesOf(host);
  } catch (err) {
    if (err instanceof MxError && !err.temporary) throw new MxError(err.message, true, '4.4.4');
    throw err;
  }
}

export class RemoteDelivery {
  private readonly settings: Pick<Settings, 'get'>;
  private readonly hostname: string;
  private readonly config: RemoteDeliveryOptions['config'];
  private readonly log: Logger;
  private readonly mx: MxResolver;
  private readonly opts: RemoteDeliveryOptions;

  constructor(opts: RemoteDeliveryOptions) {
    this.opts = opts;
    this.settings = opts.settings;
    this.hostname = opts.hostname;
    this.config = opts.config;
    this.log = opts.log.child({ component: 'relay/smtp' });
    this.mx = opts.mx ?? new MxResolver({ servers: opts.config.dns.servers, timeoutMs: opts.config.dns.timeoutMs });
  }

  /** EHLO name: `smtp.heloHost` when set, else the configured hostname. */
  private heloName(): string {
    return this.settings.get('smtp.heloHost') || this.hostname;
  }

  /** One result per entry of `job.recipients`, in the same order. Never throws for a delivery problem. */
  async send(job: RemoteJob): Promise<DeliveryResult[]> {
    const unique = [...new Set(job.recipients)];
    const results = new Map<string, DeliveryResult>();
    let destinations: Destination[];
    try {
      destinations = this.route(job, unique);
    } catch (err) {
      // A configuration problem (smarthost without host, bad next hop): the admin can fix it, so defer.
      const detail = err instanceof Error ? err.message : String(err);
      this.log.warn({ queueId: job.queueId, to: unique, err: detail }, 'cannot route message');
      for (const r of unique) results.set(r, temp(r, 451, '4.3.5', detail));
      return job.recipients.map((r) => results.get(r)!);
    }

    const concurrency = Math.max(1, this.opts.concurrency ?? 4);
    let next = 0;
    const worker = async () => {
      while (next < destinations.length) {
        const d = destinations[next++];
        for (const batch of chunk(d.recipients, Math.max(1, this.opts.maxRecipientsPerSession ?? 50))) {
          const got = await this.deliverBatch(job, d, batch);
          for (const r of got) results.set(r.recipient, r);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, destinations.length) }, worker));
    return job.recipients.map((r) => results.get(r) ?? temp(r, 451, '4.3.0', 'internal error: no result'));
  }

  /**
   * The smarthost gets our credentials, so its certificate is checked: against the system CAs plus
   * `smarthost.caFile` (a private CA, read at each delivery so a renewed file applies at once), unless
   * `smarthost.verify` is off (then TLS still encrypts, but anyone on the path can pose as the smarthost).
   * An unreadable CA file throws: route() turns that into a deferral naming the file.
   */
  private smarthostTlsOptions(): ConnectionOptions {
    const verify = this.settings.get('smarthost.verify');
    const caFile = this.settings.get('smarthost.caFile');
    let ca: string[] | undefined;
    if (caFile) {
      let pem: string;
      try {
        pem = readFileSync(caFile, 'utf8');
      } catch (err) {
        throw new Error(`smarthost.caFile ${caFile} cannot be read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
      ca = [...rootCertificates, pem];
    }
    return { rejectUnauthorized: verify, ...(ca ? { ca } : {}), ...this.opts.smarthostTls };
  }

  private route(job: RemoteJob, recipients: string[]): Destination[] {
    if (this.settings.get('smarthost.enabled')) {
      const host = this.settings.get('smarthost.host');
      if (!host) throw new Error('smarthost.enabled is set but smarthost.host is empty');
      const port = this.settings.get('smarthost.port');
      const tls = this.settings.get('smarthost.tls');
      const user = this.settings.get('smarthost.username');
      const auth = user ? { user, pass: this.settings.get('smarthost.password') ?? '' } : undefined;
      const smarthostTls = this.smarthostTlsOptions();
      return [
        {
          label: `smarthost ${host}:${port}`,
          recipients,
          candidates: async () =>
            (await configuredHost(this.mx, host)).map((address) => ({ host, address, port, tls, auth, smarthost: true, smarthostTls })),
        },
      ];
    }
    const remotePort = this.config.delivery.remotePort;
    if (job.nexthop) {
      const hop = parseNexthop(job.nexthop);
      const port = hop.port ?? remotePort;
      return [
        {
          label: `nexthop ${job.nexthop}`,
          recipients,
          candidates: async () =>
            (await configuredHost(this.mx, hop.host)).map((address) => ({ host: hop.host, address, port, tls: 'opportunistic' as const })),
        },
      ];
    }
    const byDomain = new Map<string, string[]>();
    for (const r of recipients) {
      const d = domainOf(r);
      byDomain.set(d, [...(byDomain.get(d) ?? []), r]);
    }
    const self = [this.hostname, this.heloName()];
    return [...byDomain].map(([domain, rcpts]) => ({
      label: domain,
      recipients: rcpts,
      candidates: async () => {
        const hosts = await this.mx.hostsFor(domain, { self });
        const literal = addressLiteral(domain) !== null;
        return hosts.flatMap((h) =>
          h.addresses.map((address) => ({ host: literal ? address : h.host, address, port: remotePort, tls: 'opportunistic' as const })),
        );
      },
    }));
  }

  /** Tries the candidates in order until every recipient has a final answer or no candidate is left. */
  private async deliverBatch(job: RemoteJob, dest: Destination, recipients: string[]): Promise<DeliveryResult[]> {
    let candidates: Candidate[];
    try {
      candidates = await dest.candidates();
    } catch (err) {
      const e =
        err instanceof MxError
          ? err
          : new MxError(`lookup failed: ${err instanceof Error ? err.message : String(err)}`, true, '4.4.3');
      const results = recipients.map((r) =>
        e.temporary ? temp(r, e.code, e.status, e.message) : bounce(r, e.code, e.status, e.message),
      );
      this.log.info(
        { queueId: job.queueId, relay: 'none', destination: dest.label, to: recipients, result: e.temporary ? 'deferred' : 'bounced', status: e.status, detail: e.message },
        `${e.temporary ? 'deferred' : 'bounced'}: ${e.message}`,
      );
      return results;
    }

    const final = new Map<string, DeliveryResult>();
    let lastTemp = new Map<string, DeliveryResult>();
    let pending = recipients;
    const limit = Math.max(1, this.opts.maxAddresses ?? 5);
    let tried = 0;
    for (const c of candidates) {
      if (pending.length === 0 || tried >= limit) break;
      tried++;
      let outcome = await this.session(job, c, pending);
      this.logAttempt(job, c, pending, outcome);
      if (outcome.retryPlain) {
        outcome = await this.session(job, { ...c, tls: 'plain' }, pending);
        this.logAttempt(job, { ...c, tls: 'plain' }, pending, outcome);
      }
      lastTemp = new Map();
      const still: string[] = [];
      for (const r of pending) {
        const res = outcome.results.get(r)!;
        if (res.outcome === 'tempfail') {
          lastTemp.set(r, res);
          still.push(r);
        } else {
          final.set(r, res);
        }
      }
      pending = still;
    }
    return recipients.map(
      (r) => final.get(r) ?? lastTemp.get(r) ?? temp(r, 451, '4.4.1', `no reachable host for ${dest.label}`),
    );
  }

  /** One SMTP session to one address: a result for every recipient. */
  private async session(job: RemoteJob, c: Candidate, rcpts: string[]): Promise<SessionOutcome> {
    const mta = c.host;
    const connectMs = Math.round(this.config.delivery.connectTimeoutSeconds * 1000);
    const servername = isIP(c.host) ? undefined : c.host;
    const conn = new SMTPConnection({
      host: c.address,
      port: c.port,
      name: this.heloName(),
      secure: c.tls === 'tls',
      requireTLS: c.tls === 'starttls',
      opportunisticTLS: c.tls === 'opportunistic',
      ignoreTLS: c.tls === 'plain' || c.tls === 'none',
      servername,
      tls: c.smarthost
        ? { rejectUnauthorized: true, ...(servername ? { servername } : {}), ...c.smarthostTls }
        : { rejectUnauthorized: false, ...(servername ? { servername } : {}) },
      connectionTimeout: connectMs,
      greetingTimeout: connectMs,
      socketTimeout: this.opts.socketTimeoutMs ?? 10 * 60 * 1000,
      logger: false,
    });
    conn.on('error', noop); // every error is also handed to the operation in flight (see run)
    const results = new Map<string, DeliveryResult>();
    const all = (make: (r: string) => DeliveryResult) => {
      for (const r of rcpts) if (!results.has(r)) results.set(r, make(r));
    };
    let stage: 'connect' | 'auth' | 'send' = 'connect';
    try {
      await run<void>(conn, (cb) => conn.connect((err) => cb(err)));

      // RFC 6531 §3.2: a non-ASCII address may only go to a server that offers SMTPUTF8.
      const extensions = (conn as unknown as { _supportedExtensions?: string[] })._supportedExtensions;
      const utf8 = Array.isArray(extensions) && extensions.includes('SMTPUTF8');
      if (Array.isArray(extensions) && !utf8) {
        const why = `${mta} does not support SMTPUTF8, required for a non-ASCII address`;
        if (hasNonAscii(job.from)) all((r) => bounce(r, 550, '5.6.7', why, mta));
        for (const r of rcpts) if (hasNonAscii(r)) results.set(r, bounce(r, 553, '5.6.7', why, mta));
      }
      const sendTo = rcpts.filter((r) => !results.has(r));
      if (sendTo.length === 0) return { results, tls: conn.secure };

      stage = 'auth';
      if (c.auth) {
        if (!conn.allowsAuth) {
          all((r) => temp(r, 454, '4.7.0', `${mta} does not offer AUTH, but smarthost.username is set`, mta));
          return { results, tls: conn.secure };
        }
        await run<boolean>(conn, (cb) => conn.login({ user: c.auth!.user, pass: c.auth!.pass }, (err, ok) => cb(err, ok)));
      }

      stage = 'send';
      const info = await run<SMTPConnection.SentMessageInfo>(conn, (cb) =>
        conn.send(
          { from: job.from, to: sendTo, size: job.message.length, use8BitMime: has8bit(job.message) },
          job.message,
          (err, sent) => cb(err, sent),
        ),
      );
      const reply = flattenReply(info.response);
      const code = Number(/^\d{3}/.exec(reply)?.[0] ?? 250);
      for (const e of info.rejectedErrors ?? []) this.recipientError(results, e, mta);
      for (const r of info.accepted) if (!results.has(r)) results.set(r, fromReply(r, code, reply, mta));
      all((r) => temp(r, 451, '4.3.0', `${mta}: no answer for this recipient`, mta));
      return { results, tls: conn.secure };
    } catch (e) {
      const err = e as SmtpClientError;
      const tls = conn.secure;
      // A handshake that fails mid-way surfaces as ETLS or as a socket error while `upgrading`.
      if (c.tls === 'opportunistic' && ((err.code === 'ETLS' && !err.responseCode) || conn.upgrading)) {
        all((r) => temp(r, 454, '4.7.5', `TLS handshake with ${mta} failed: ${err.message}`, mta));
        return { results, tls, retryPlain: true };
      }
      this.classify(err, stage, conn, c, rcpts, results);
      return { results, tls };
    } finally {
      try {
        if (!conn.destroyed) conn.quit();
      } catch {
        /* already closing */
      }
      setTimeout(() => conn.close(), 5000).unref();
    }
  }

  private recipientError(results: Map<string, DeliveryResult>, e: SmtpClientError, mta: string): void {
    if (!e.recipient || results.has(e.recipient)) return;
    if (e.responseCode && e.response) results.set(e.recipient, fromReply(e.recipient, e.responseCode, e.response, mta));
  }

  private classify(
    err: SmtpClientError,
    stage: 'connect' | 'auth' | 'send',
    conn: SMTPConnection,
    c: Candidate,
    rcpts: string[],
    results: Map<string, DeliveryResult>,
  ): void {
    const mta = c.host;
    const all = (make: (r: string) => DeliveryResult) => {
      for (const r of rcpts) if (!results.has(r)) results.set(r, make(r));
    };
    const reply = err.response ? flattenReply(err.response) : '';
    const code = err.responseCode;

    if (stage === 'auth' || err.code === 'EAUTH') {
      const status = code ? statusOf(code, reply).replace(/^5/, '4') : '4.0.0';
      const why = `authentication at ${mta} failed: ${reply || err.message}`;
      return all((r) => temp(r, 454, status === '4.0.0' ? '4.7.0' : status, why, mta));
    }
    const tlsFailure = /CERT|SSL|TLS|SELF_SIGNED|UNABLE_TO_/i.test(err.originalCode ?? '');
    if (err.code === 'ETLS' || err.code === 'EREQUIRETLS' || conn.upgrading || tlsFailure) {
      // Only reachable for the smarthost (required TLS) or a STARTTLS 5xx on an opportunistic connection.
      const status = code ? '4.7.4' : '4.7.5';
      return all((r) => temp(r, 454, status, `TLS with ${mta} failed: ${reply || err.message}`, mta));
    }
    if (err.code === 'EMESSAGE' && !code && /larger than allowed/i.test(err.message)) {
      // The server's SIZE limit (RFC 1870) is below the message: it will never fit.
      return all((r) => bounce(r, 552, '5.3.4', `message size exceeds the limit of ${mta}: ${err.message}`, mta));
    }

    if (code && stage === 'send' && err.command && err.command !== 'CONN') {
      if (err.command === 'MAIL FROM') return all((r) => fromReply(r, code, err.response!, mta));
      // Per-recipient answers first (RCPT replies), then the DATA-stage reply for those the server had accepted.
      const env = (conn as unknown as { _envelope?: EnvelopeState })._envelope;
      for (const e of err.rejectedErrors ?? env?.rejectedErrors ?? []) this.recipientError(results, e, mta);
      if (err.command === 'RCPT TO') return all((r) => fromReply(r, code, err.response!, mta));
      return all((r) => fromReply(r, code, err.response!, mta));
    }

    if (code) {
      // A reply before the transaction: greeting, EHLO/HELO, or a 421 closing the session. A 5xx here is about
      // us talking to this host, not about the recipients: defer and try elsewhere (see the header comment).
      const status = code < 500 ? statusOf(code, reply) : statusOf(code, reply).replace(/^5/, '4');
      return all((r) => temp(r, code < 500 ? code : 451, status, `host ${mta} refused to talk to us: ${reply}`, mta));
    }

    // No reply: the connection failed or dropped. Keep the RCPT answers already had (a 5xx is still final).
    if (stage === 'send') {
      const env = (conn as unknown as { _envelope?: EnvelopeState })._envelope;
      for (const e of env?.rejectedErrors ?? []) this.recipientError(results, e, mta);
    }
    const connected = conn.stage === 'connected';
    const what = err.code === 'ETIMEDOUT' ? `timed out${err.timeoutType ? ` (${err.timeoutType})` : ''}` : err.message;
    if (!connected) {
      return all((r) => temp(r, 421, '4.4.1', `connect to ${mta}[${c.address}]:${c.port}: ${what}`, mta));
    }
    all((r) => temp(r, 421, '4.4.2', `lost connection with ${mta}[${c.address}]:${c.port}: ${what}`, mta));
  }

  private logAttempt(job: RemoteJob, c: Candidate, rcpts: string[], outcome: SessionOutcome): void {
    const rs = rcpts.map((r) => outcome.results.get(r)!);
    const counts = { delivered: 0, tempfail: 0, bounce: 0 };
    for (const r of rs) counts[r.outcome]++;
    const result =
      counts.delivered === rs.length ? 'sent' : counts.bounce === rs.length ? 'bounced' : counts.tempfail === rs.length ? 'deferred' : 'mixed';
    const line = {
      queueId: job.queueId,
      relay: `${c.host}[${c.address}]:${c.port}`,
      tls: outcome.tls,
      ...(c.smarthost ? { smarthost: true } : {}),
      to: rcpts,
      result,
      results: rs.map((r) => ({
        to: r.recipient,
        outcome: r.outcome,
        ...(r.outcome === 'delivered' ? { detail: r.detail } : { code: r.code, status: r.status, detail: r.detail }),
      })),
    };
    this.opts.trace?.record({
      queueId: job.queueId,
      type: 'attempt',
      detail: {
        host: line.relay,
        tls: outcome.tls,
        ...(c.smarthost ? { smarthost: true } : {}),
        result,
        replies: rs.map((r) => ({ to: r.recipient, reply: r.outcome === 'delivered' ? (r.detail ?? '250') : r.detail.startsWith(String(r.code)) ? r.detail : `${r.code} ${r.status} ${r.detail}` })),
      },
    });
    if (result === 'sent') this.log.info(line, `sent to ${line.relay}`);
    else this.log.warn(line, `${result} at ${line.relay}`);
  }
}
