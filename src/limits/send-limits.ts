/**
 * Send limits (issue 13 §5): a stolen account cannot flood the world. Per authenticated user and per client address,
 * at most N messages and M recipients in any 60 minutes (window.ts); past them MAIL FROM or RCPT TO is answered
 * `451 4.7.1` — temporary (RFC 3463 §3.8: X.7.1 "delivery not authorized"; 4xx so a real user's client retries
 * later and nothing is bounced), one alert per key and window goes to the log, and the admin API, the dashboard and
 * /metrics show who is at the limit.
 *
 * What applies to whom (like Postfix's anvil with smtpd_client_message_rate_limit and
 * smtpd_client_event_limit_exceptions = $mynetworks):
 *  - every authenticated session, on any listener (587, 465, and 25 with smtp.authOnPort25): the user's limits
 *    (smtp.sendLimit.messagesPerHour / recipientsPerHour, or the user's own), also from the office network — a
 *    stolen password is used from inside too;
 *  - the same sessions, counted by client address (an IPv6 client by its /64, what one customer gets): many stolen
 *    accounts used from one place; clients in smtp.trustedNetworks or smtp.relayFrom are exempt from this one (a
 *    whole office behind one NAT address);
 *  - unauthenticated sessions are not counted: on port 25 that is inbound mail to our users, and the relay clients
 *    of smtp.relayFrom (printers, applications) are trusted by the admin by address, as Postfix trusts mynetworks.
 *
 * Only what is accepted counts: a message counts when DATA was answered 250, with the recipients accepted for it.
 * To keep the limit exact with several connections of one account at once, MAIL FROM and RCPT TO reserve their
 * share until DATA ends (counted) or the transaction is abandoned (RSET then MAIL, a refused DATA, QUIT: released).
 *
 * The hot path is memory only; changed buckets are written to the counter store in one transaction at most every
 * `flushMs` (250 ms) and at close — no fsync per message (store.ts).
 *
 * With `shared` (state postgres, pg-counters.ts) the counters are the cluster's: MAIL FROM and RCPT TO ask
 * PostgreSQL, which checks and reserves in one locked step, so the limit holds across nodes; the commit and the
 * release go there too. A check PostgreSQL cannot answer is `451 4.3.0` (a limit that cannot be checked is not
 * waived, and a 4xx is retried: RFC 5321 §4.2.5). status() reads a copy of the shared counts refreshed every
 * `refreshMs` (1 s) and by fresh(); the alert of a key is logged by the one node that claims it per window.
 */
import { isIPv6 } from 'node:net';
import { SmtpError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import { inNetworks } from '../lib/networks.js';
import type { Settings } from '../settings/store.js';
import type { SharedCounters } from './pg-counters.js';
import type { CounterStore } from './store.js';
import { minuteOf, SlidingWindow, WINDOW_MINUTES, type Count } from './window.js';

export type LimitReason = 'user_messages' | 'user_recipients' | 'ip_messages' | 'ip_recipients';
export const LIMIT_REASONS: readonly LimitReason[] = ['user_messages', 'user_recipients', 'ip_messages', 'ip_recipients'];

export interface SendLimitAlert {
  at: string;
  kind: 'user' | 'ip';
  /** The login (lower case) or the client address / IPv6 /64. */
  name: string;
  reason: LimitReason;
  count: number;
  limit: number;
  /** The address the refused client came from. */
  client: string;
}

/** One user's or address's usage in the last 60 minutes against its limits (0 = no limit). */
export interface LimitUsage {
  name: string;
  messages: number;
  recipients: number;
  messageLimit: number;
  recipientLimit: number;
  /** The user has their own limit (user set --send-limit-…). */
  custom?: boolean;
  /** At a limit now: the next MAIL FROM (or RCPT TO) is refused. */
  overLimit: boolean;
}

export interface LimitsStatus {
  windowMinutes: number;
  /** Usage at or above this share of a limit is listed ("near the limit"). */
  nearRatio: number;
  defaults: {
    user: { messagesPerHour: number; recipientsPerHour: number };
    ip: { messagesPerHour: number; recipientsPerHour: number };
  };
  users: LimitUsage[];
  ips: LimitUsage[];
  alerts: SendLimitAlert[];
}

export interface SendLimitsOptions {
  settings: Pick<Settings, 'get' | 'effectiveUser'>;
  log: Logger;
  store?: CounterStore;
  /** Milliseconds between writes of changed counters to the store (default 250). */
  flushMs?: number;
  /** The clock, in ms (tests). */
  now?: () => number;
  /** The cluster's counters (state postgres); `store` is then not used. */
  shared?: SharedCounters;
  /** This node's id: reservations are named by it. */
  nodeId?: string;
  /** Milliseconds between refreshes of status()'s copy of the shared counts (default 1000). */
  refreshMs?: number;
}

interface Transaction {
  user: string;
  ip?: string;
  recipients: number;
  /** shared: the reservation's id in PostgreSQL, and the check in progress (RCPT TO waits for MAIL FROM's). */
  id?: string;
  pending?: Promise<unknown>;
}

const NEAR = 0.8;
const KEEP_ALERTS = 100;

/** The key of a client address: IPv4 as is (also IPv4-mapped IPv6), IPv6 by its /64. */
export function clientKey(ip: string): string {
  if (!ip.includes(':')) return ip; // IPv4, the usual case, without isIPv6's large regular expression
  const v4 = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip)?.[1];
  if (v4) return v4;
  if (!isIPv6(ip)) return ip;
  const [head, tail = ''] = ip.toLowerCase().split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = ip.includes('::') ? [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t] : h;
  return `${groups
    .slice(0, 4)
    .map((g) => g.replace(/^0+(?=.)/, ''))
    .join(':')}::/64`;
}

export class SendLimits {
  private window = new SlidingWindow();
  /** Reserved by open transactions, per key. */
  private readonly inflight = new Map<string, Count>();
  private readonly txns = new Map<string, Transaction>();
  /** key → when its last alert was logged (ms). */
  private readonly alerted = new Map<string, number>();
  private recentAlerts: SendLimitAlert[] = [];
  /** Refusals since start, by reason (Prometheus counter). */
  readonly refusals = new Map<LimitReason, number>(LIMIT_REASONS.map((r) => [r, 0]));
  private timer: NodeJS.Timeout | undefined;
  private readonly now: () => number;
  private readonly flushMs: number;
  private closed = false;
  private readonly shared: SharedCounters | undefined;
  /** shared: commits and releases under way (close() waits for them). */
  private readonly inFlight = new Set<Promise<unknown>>();
  private refreshTimer: NodeJS.Timeout | undefined;
  private refreshing: Promise<void> | undefined;
  private seq = 0;

  constructor(private readonly opts: SendLimitsOptions) {
    this.now = opts.now ?? Date.now;
    this.flushMs = opts.flushMs ?? 250;
    this.shared = opts.shared;
    if (this.shared) {
      this.refreshTimer = setInterval(() => void this.fresh().catch(() => undefined), opts.refreshMs ?? 1000);
      this.refreshTimer.unref();
    } else if (opts.store) this.window.load(opts.store.load(minuteOf(this.now()) - WINDOW_MINUTES), minuteOf(this.now()));
  }

  /** shared: status()'s copy of the cluster's counts and alerts read now (nothing to do without `shared`). */
  fresh(): Promise<void> {
    const shared = this.shared;
    if (!shared || this.closed) return Promise.resolve();
    this.refreshing ??= (async () => {
      try {
        const minute = minuteOf(this.now());
        const snap = await shared.snapshot(minute, KEEP_ALERTS);
        const w = new SlidingWindow();
        w.load(snap.rows, minute);
        this.window = w;
        this.recentAlerts = snap.alerts.slice().reverse();
      } finally {
        this.refreshing = undefined;
      }
    })();
    return this.refreshing;
  }

  private track(p: Promise<unknown>, what: string): void {
    const q = p.catch((err: unknown) => this.opts.log.error({ component: 'limits', err: (err as Error).message }, `send-limit ${what} not written to PostgreSQL`));
    this.inFlight.add(q);
    void q.finally(() => this.inFlight.delete(q));
  }

  /** shared: MAIL FROM checked and reserved in PostgreSQL. */
  private async sharedMail(session: { id: string; ip: string; log: Logger }, t: Transaction, userLimit: number, ipLimit: number): Promise<SmtpError | null> {
    const now = this.now();
    try {
      const over = await this.shared!.reserveMail(t.id!, { key: t.user, limit: userLimit }, t.ip ? { key: t.ip, limit: ipLimit } : undefined, minuteOf(now));
      if (!over) return null;
      if (this.txns.get(session.id) === t) this.txns.delete(session.id);
      return this.refuse(over, session.ip, session.log, now);
    } catch (err) {
      if (this.txns.get(session.id) === t) this.txns.delete(session.id);
      session.log.warn({ component: 'limits', err: (err as Error).message }, 'send limit cannot be checked (state store unreachable): 451');
      return new SmtpError(451, '4.3.0', 'Temporary failure, try again later');
    }
  }

  private async sharedRcpt(session: { id: string; ip: string; log: Logger }, t: Transaction, userLimit: number, ipLimit: number): Promise<SmtpError | null> {
    await t.pending;
    if (this.txns.get(session.id) !== t) return new SmtpError(451, '4.3.0', 'Temporary failure, try again later');
    const now = this.now();
    try {
      const over = await this.shared!.reserveRcpt(t.id!, { key: t.user, limit: userLimit }, t.ip ? { key: t.ip, limit: ipLimit } : undefined, minuteOf(now));
      if (over) return this.refuse(over, session.ip, session.log, now);
      t.recipients++;
      return null;
    } catch (err) {
      session.log.warn({ component: 'limits', err: (err as Error).message }, 'send limit cannot be checked (state store unreachable): 451');
      return new SmtpError(451, '4.3.0', 'Temporary failure, try again later');
    }
  }

  /**
   * MAIL FROM of an authenticated session: refused when the user (or the client address) has sent its messages for
   * the hour; otherwise one message is reserved. A previous transaction of the session is abandoned first.
   */
  checkMail(session: { id: string; login?: string; ip: string; log: Logger }): SmtpError | null | Promise<SmtpError | null> {
    this.release(session.id);
    if (!session.login) return null;
    const user = `user:${session.login.toLowerCase()}`;
    const s = this.opts.settings;
    const exempt = inNetworks(s.get('smtp.trustedNetworks'), session.ip) || inNetworks(s.get('smtp.relayFrom'), session.ip);
    const ip = exempt ? undefined : `ip:${clientKey(session.ip)}`;
    const now = this.now();
    const eff = s.effectiveUser(session.login);
    if (this.shared) {
      const t: Transaction = { user, ip, recipients: 0, id: `${this.opts.nodeId ?? 'node'}:${session.id}:${++this.seq}` };
      this.txns.set(session.id, t);
      const p = this.sharedMail(session, t, eff.sendLimitMessages, s.get('smtp.sendLimit.ipMessagesPerHour'));
      t.pending = p;
      return p;
    }
    const refused =
      this.over(user, 'messages', eff.sendLimitMessages, now) ??
      (ip ? this.over(ip, 'messages', s.get('smtp.sendLimit.ipMessagesPerHour'), now) : undefined);
    if (refused) return this.refuse(refused, session.ip, session.log, now);
    this.reserve(user, 1, 0);
    if (ip) this.reserve(ip, 1, 0);
    this.txns.set(session.id, { user, ip, recipients: 0 });
    return null;
  }

  /** RCPT TO, after every other check accepted it: refused past the recipients of the hour, else reserved. */
  checkRcpt(session: { id: string; login?: string; ip: string; log: Logger }): SmtpError | null | Promise<SmtpError | null> {
    const t = this.txns.get(session.id);
    if (!t || !session.login) return null;
    const s = this.opts.settings;
    if (this.shared) {
      const p = this.sharedRcpt(session, t, s.effectiveUser(session.login).sendLimitRecipients, s.get('smtp.sendLimit.ipRecipientsPerHour'));
      t.pending = p;
      return p;
    }
    const now = this.now();
    const refused =
      this.over(t.user, 'recipients', s.effectiveUser(session.login).sendLimitRecipients, now) ??
      (t.ip ? this.over(t.ip, 'recipients', s.get('smtp.sendLimit.ipRecipientsPerHour'), now) : undefined);
    if (refused) return this.refuse(refused, session.ip, session.log, now);
    this.reserve(t.user, 0, 1);
    if (t.ip) this.reserve(t.ip, 0, 1);
    t.recipients++;
    return null;
  }

  /** DATA was answered 250: the message and its recipients count. */
  accepted(sessionId: string): void {
    const t = this.txns.get(sessionId);
    if (!t) return;
    const minute = minuteOf(this.now());
    if (this.shared) {
      this.txns.delete(sessionId);
      // After the check under way, if any (it cannot be: DATA follows the answered RCPT TOs; kept for safety).
      this.track((t.pending ?? Promise.resolve()).then(() => this.shared!.commit(t.id!, minute)), 'commit');
      this.window.add(t.user, minute, { messages: 1, recipients: t.recipients });
      return;
    }
    this.release(sessionId);
    const c = { messages: 1, recipients: t.recipients };
    this.window.add(t.user, minute, c);
    if (t.ip) this.window.add(t.ip, minute, c);
    this.scheduleFlush();
  }

  /** The transaction ended without a 250 (refused DATA, RSET and a new MAIL, disconnect): its reservation goes. */
  release(sessionId: string): void {
    const t = this.txns.get(sessionId);
    if (!t) return;
    this.txns.delete(sessionId);
    if (this.shared) {
      // A release that fails leaves the reservation to expire: it counts a little longer, never less.
      this.track((t.pending ?? Promise.resolve()).catch(() => undefined).then(() => this.shared!.release(t.id!)), 'release');
      return;
    }
    this.reserve(t.user, -1, -t.recipients);
    if (t.ip) this.reserve(t.ip, -1, -t.recipients);
  }

  /** Forgets a user's (or address's) counts: an admin lets a user whose limit was reached send again. */
  reset(kind: 'user' | 'ip', name: string): boolean | Promise<boolean> {
    const key = `${kind}:${kind === 'user' ? name.toLowerCase() : clientKey(name)}`;
    if (this.shared) {
      this.alerted.delete(key);
      this.window.clear(key);
      return this.shared.reset(key, minuteOf(this.now()));
    }
    const had = this.window.count(key, minuteOf(this.now()));
    this.window.clear(key);
    this.alerted.delete(key);
    this.scheduleFlush();
    return had.messages > 0 || had.recipients > 0;
  }

  /** Users and addresses at or near their limits, and the recent alerts (GET /api/limits, the dashboard). */
  status(opts: { all?: boolean } = {}): LimitsStatus {
    const s = this.opts.settings;
    const minute = minuteOf(this.now());
    const users: LimitUsage[] = [];
    const ips: LimitUsage[] = [];
    const ipLimits = { messages: s.get('smtp.sendLimit.ipMessagesPerHour'), recipients: s.get('smtp.sendLimit.ipRecipientsPerHour') };
    for (const [key, c] of this.window.active(minute)) {
      const colon = key.indexOf(':');
      const kind = key.slice(0, colon);
      const name = key.slice(colon + 1);
      let u: LimitUsage;
      if (kind === 'user') {
        const eff = s.effectiveUser(name);
        u = this.usage(name, c, eff.sendLimitMessages, eff.sendLimitRecipients);
        u.custom = eff.sendLimitMessagesCustom || eff.sendLimitRecipientsCustom;
      } else {
        u = this.usage(name, c, ipLimits.messages, ipLimits.recipients);
      }
      const near = (n: number, limit: number) => limit > 0 && n >= limit * NEAR;
      if (!opts.all && !near(u.messages, u.messageLimit) && !near(u.recipients, u.recipientLimit)) continue;
      (kind === 'user' ? users : ips).push(u);
    }
    const order = (a: LimitUsage, b: LimitUsage) => Number(b.overLimit) - Number(a.overLimit) || b.messages - a.messages || a.name.localeCompare(b.name);
    return {
      windowMinutes: WINDOW_MINUTES,
      nearRatio: NEAR,
      defaults: {
        user: { messagesPerHour: s.get('smtp.sendLimit.messagesPerHour'), recipientsPerHour: s.get('smtp.sendLimit.recipientsPerHour') },
        ip: { messagesPerHour: ipLimits.messages, recipientsPerHour: ipLimits.recipients },
      },
      users: users.sort(order),
      ips: ips.sort(order),
      alerts: this.recentAlerts.slice().reverse(),
    };
  }

  /** How many users and addresses are at a limit now (Prometheus gauges). */
  overLimitCounts(): { users: number; ips: number } {
    const st = this.status();
    return { users: st.users.filter((u) => u.overLimit).length, ips: st.ips.filter((u) => u.overLimit).length };
  }

  /** Writes the changed counters now (also called by the timer and by close). */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.shared) return;
    const minute = minuteOf(this.now());
    const rows = this.window.takeDirty();
    this.window.prune(minute);
    for (const [key, at] of this.alerted) if (this.now() - at >= WINDOW_MINUTES * 60_000) this.alerted.delete(key);
    if (!this.opts.store || rows.length === 0) return;
    try {
      this.opts.store.save(rows, minute - WINDOW_MINUTES);
    } catch (err) {
      // The limits hold in memory; only their survival across a restart waits for the next write.
      this.window.markDirty(rows);
      this.opts.log.error({ component: 'limits', err }, 'send-limit counters not saved, will retry');
      if (!this.closed) this.scheduleFlush();
    }
  }

  close(): void {
    this.closed = true;
    if (this.refreshTimer) clearInterval(this.refreshTimer);
    this.flush();
    this.opts.store?.close();
  }

  /** shared: the commits and releases still under way written (or failed); call after close(), before the pool closes. */
  async settled(): Promise<void> {
    while (this.inFlight.size) await Promise.all([...this.inFlight]);
  }

  private usage(name: string, c: Count, messageLimit: number, recipientLimit: number): LimitUsage {
    return {
      name,
      messages: c.messages,
      recipients: c.recipients,
      messageLimit,
      recipientLimit,
      overLimit: (messageLimit > 0 && c.messages >= messageLimit) || (recipientLimit > 0 && c.recipients >= recipientLimit),
    };
  }

  private reserve(key: string, messages: number, recipients: number): void {
    const c = this.inflight.get(key) ?? { messages: 0, recipients: 0 };
    c.messages += messages;
    c.recipients += recipients;
    if (c.messages <= 0 && c.recipients <= 0) this.inflight.delete(key);
    else this.inflight.set(key, c);
  }

  private over(key: string, what: keyof Count, limit: number, now: number): { key: string; what: keyof Count; count: number; limit: number } | undefined {
    if (limit <= 0) return undefined;
    const count = this.window.count(key, minuteOf(now))[what];
    const pending = this.inflight.get(key)?.[what] ?? 0;
    return count + pending >= limit ? { key, what, count, limit } : undefined;
  }

  private refuse(r: { key: string; what: keyof Count; count: number; limit: number }, client: string, log: Logger, now: number): SmtpError {
    const kind = r.key.startsWith('user:') ? 'user' : 'ip';
    const name = r.key.slice(kind.length + 1);
    const reason = `${kind}_${r.what}` as LimitReason;
    this.refusals.set(reason, (this.refusals.get(reason) ?? 0) + 1);
    const last = this.alerted.get(r.key);
    // One alert per user (or address) and window, not one per refused message: a script hammering away at the
    // limit would otherwise drown the log it is meant to show up in.
    if (last === undefined || now - last >= WINDOW_MINUTES * 60_000) {
      this.alerted.set(r.key, now);
      const alert: SendLimitAlert = { at: new Date(now).toISOString(), kind, name, reason, count: r.count, limit: r.limit, client };
      const logIt = () =>
        log.warn(
          { event: 'send-limit', alert: true, reason, ...(kind === 'user' ? { user: name } : { clientKey: name }), count: r.count, limit: r.limit },
          `send limit reached: ${kind} ${name} sent ${r.count} ${r.what} in the last hour (limit ${r.limit}); further ${r.what} refused with 451 4.7.1`,
        );
      if (this.shared) {
        // Once for the cluster: the node whose claim wins logs it; the alert list is the shared one (fresh()).
        this.track(
          this.shared.claimAlert(alert, r.key).then((mine) => {
            if (mine) logIt();
          }),
          'alert',
        );
      } else {
        this.recentAlerts.push(alert);
        if (this.recentAlerts.length > KEEP_ALERTS) this.recentAlerts.shift();
        logIt();
      }
    }
    const per = r.what === 'messages' ? 'messages' : 'recipients';
    return new SmtpError(451, '4.7.1', `Sending limit reached (${r.limit} ${per} per hour${kind === 'ip' ? ' from this address' : ''}), try again later`);
  }

  private scheduleFlush(): void {
    if (this.timer || this.closed || !this.opts.store) return;
    this.timer = setTimeout(() => this.flush(), this.flushMs);
    this.timer.unref();
  }
}
