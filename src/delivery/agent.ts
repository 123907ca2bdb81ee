/**
 * The delivery agent the queue scheduler calls for each attempt (DESIGN.md §3 "Queue" → "delivery" → "store").
 *
 * First, every recipient still pending is routed through the resolver, at every attempt: list members, shared
 * folders, Bcc copies, forwards (with or without a kept copy), relay domains and remote addresses. Routes are
 * decided when delivering, not when queueing (DESIGN.md §6, Postfix's qmgr asks its transport table per attempt):
 * a relay next hop, a domain turned local or relay, or a forward changed by IT applies to mail already queued,
 * from the next attempt (`postern queue flush`) on. The route each recipient took is kept in the envelope, so a
 * retry delivers only what is still pending and a member reached through two paths gets one copy. What was
 * expanded stays expanded: a list, or a forward without a kept copy, is final once its children exist (as
 * Postfix's local(8) resubmits a forward as new mail); each child is then routed afresh at its own attempts.
 * Then local copies go into the Maildir store and remote ones out through RemoteDelivery, each recipient getting
 * its own final or temporary state.
 */
import { TempFailure } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import type { Resolver } from '../resolver/resolver.js';
import type { Settings } from '../settings/store.js';
import type { MailStore, MailboxOwner } from '../store/types.js';
import { QuotaExceeded, userOwner } from '../store/types.js';
import type { UserEntry } from '../directory/types.js';
import type { DeliveryResult, QueueEnvelope, QueueRecipient, SpooledFile } from '../queue/types.js';
import { localDeliveryPrefix } from './prefix.js';
import type { RemoteDelivery } from './remote.js';
import type { Srs } from './srs.js';
import type { TraceRecorder } from '../trace/types.js';
import type { NewEnvelope } from '../queue/spool.js';
import type { DeliveryPlan, SieveDelivery } from '../sieve/delivery.js';
import { KeyedMutex } from '../store/keyed-mutex.js';

export interface AgentOptions {
  resolver: Resolver;
  settings: Settings;
  store: MailStore;
  remote: Pick<RemoteDelivery, 'send'>;
  hostname: string;
  /** Received fields beyond which a message is looping (config delivery.hopLimit). */
  hopLimit: number;
  log: Logger;
  /** Tells IMAP/POP3 sessions watching the folder that a message arrived. */
  onDelivered?: (owner: MailboxOwner, folder: string) => void;
  /**
   * Sender Rewriting Scheme (config srs): copies we send on to another domain (forwards, Bcc and list copies to
   * remote addresses) leave with an SRS sender so SPF passes at the receiver; bounces to it are reversed here.
   */
  srs?: Srs;
  /** Message trace: the outcome of each recipient at each attempt (delivered, relayed, deferred, failed). */
  trace?: TraceRecorder;
  /**
   * Sieve at delivery (issue 15): out-of-office, the admin before script and the user's active script decide the
   * folders, flags and the messages sent on; absent, a user's mail goes where it always went.
   */
  sieve?: Pick<SieveDelivery, 'plan'>;
  /** Queues a new message (vacation replies, redirects, rejection notices made by Sieve). Needed with `sieve`. */
  enqueue?: (message: Buffer, envelope: NewEnvelope) => Promise<string>;
  /**
   * The Maildir letters of IMAP keywords in a folder (given one in its dovecot-keywords when new), for the keywords
   * a Sieve script set (imap4flags); absent, keywords are not stored.
   */
  keywordLetters?: (owner: MailboxOwner, folder: string, keywords: string[]) => Promise<string>;
}

/** Expansion depth (forward of a forward of a list…) beyond which we call it a loop. */
const MAX_DEPTH = 8;
/** Recipients one message may grow to through expansion. */
const MAX_RECIPIENTS = 5000;

/** The result of a recipient whose mailbox or address another path of the same message already reaches. */
const DUPLICATE = '250 2.0.0 duplicate: delivered once';

/** The header section of a message, as text. */
function headerOf(message: Buffer): string {
  const end = message.indexOf('\r\n\r\n');
  return message.subarray(0, end < 0 ? message.length : end).toString('latin1');
}

/** A user's route carries the objectGUID: the mailbox is the AD object's, whatever its login is by delivery time. */
function userRoute(user: UserEntry): NonNullable<QueueRecipient['route']> {
  return user.guid ? { kind: 'user', login: user.login, guid: user.guid } : { kind: 'user', login: user.login };
}

function routeKey(r: QueueRecipient): string | null {
  if (!r.route) return null;
  switch (r.route.kind) {
    case 'user':
      return r.route.guid ? `user:${r.route.guid}` : `user:${r.route.login.toLowerCase()}`;
    case 'shared':
      return `shared:${r.route.group.toLowerCase()}`;
    case 'remote':
      return `remote:${r.address}`;
  }
}

function fail(r: QueueRecipient, code: number, status: string, text: string): void {
  r.state = 'failed';
  r.status = status;
  r.lastResult = `${code} ${status} ${text}`;
}

export class LocalRemoteAgent {
  private readonly log: Logger;
  /**
   * Sieve deliveries to one mailbox run one at a time: what one message records (the vacation reply sent, RFC 7352
   * duplicate ids) is seen by the next, so two copies arriving together get one reply and one delivery.
   */
  private readonly sieveLocks = new KeyedMutex();
  constructor(private readonly opts: AgentOptions) {
    this.log = opts.log.child({ component: 'delivery' });
  }

  async deliver(envelope: QueueEnvelope, message: Buffer, spooled?: SpooledFile): Promise<QueueRecipient[]> {
    const recipients = envelope.recipients.map((r) => ({ ...r }));
    const log = this.log.child({ queueId: envelope.id });
    await this.expand(recipients, log);
    const header = headerOf(message);
    const hops = (header.match(/^Received:/gim) ?? []).length;
    const folders = new Map<QueueRecipient, string>();
    for (const r of recipients) {
      if (r.state !== 'pending' || !r.route || r.route.kind === 'remote') continue;
      r.attempts++;
      await this.deliverLocal(envelope, message, header, hops, r, log, spooled, folders);
    }
    await this.deliverRemote(envelope, message, recipients, log);
    if (this.opts.trace) this.traceOutcomes(envelope, recipients, folders);
    return recipients;
  }

  /**
   * One trace event per recipient this attempt decided or tried: delivered (a mailbox and folder, or how else:
   * list expanded, forwarded, duplicate), relayed (the host and its reply), deferred, failed. Recipients final
   * before this attempt are left out; a pending one counts when it was tried (its attempts went up) or got a reply.
   */
  private traceOutcomes(envelope: QueueEnvelope, recipients: QueueRecipient[], folders: Map<QueueRecipient, string>): void {
    const key = (r: QueueRecipient) => `${r.address}\u0000${r.parent ?? ''}`;
    const before = new Map(envelope.recipients.map((r) => [key(r), r]));
    for (const r of recipients) {
      const was = before.get(key(r));
      if (was && was.state !== 'pending') continue;
      if (r.state === 'pending' && was && r.attempts === was.attempts && r.lastResult === was.lastResult) continue;
      const detail: Record<string, unknown> = { reply: r.lastResult };
      if (r.parent) Object.assign(detail, { parent: r.parent, origin: r.origin });
      if (r.remoteMta) detail.host = r.remoteMta;
      let type: 'delivered' | 'relayed' | 'deferred' | 'failed' = r.state === 'failed' ? 'failed' : r.state === 'pending' ? 'deferred' : 'delivered';
      if (r.state === 'delivered' && r.route?.kind === 'remote') type = 'relayed';
      const folder = folders.get(r);
      if (folder !== undefined && r.route?.kind === 'user') Object.assign(detail, { mailbox: r.route.login, folder });
      if (folder !== undefined && r.route?.kind === 'shared') Object.assign(detail, { shared: r.route.group, folder });
      this.opts.trace!.record({ queueId: envelope.id, type, rcpt: r.address, detail });
    }
  }

  /** Routes every pending recipient afresh; adds children for lists, Bcc and forwards (once each). */
  private async expand(recipients: QueueRecipient[], log: Logger): Promise<void> {
    for (const r of recipients) {
      // A list member without a mail address has no address to resolve: its route is the directory's answer.
      if (r.state === 'pending' && r.address.includes('@')) delete r.route;
    }
    // What this message already reached. Not through a duplicate: that one counted on a recipient that may still be
    // pending, and is routed again below — it must not find its own mailbox "already reached" and never get it.
    const seen = new Set<string>();
    for (const r of recipients) {
      const k = routeKey(r);
      if (k && r.lastResult !== DUPLICATE) seen.add(k);
    }
    const byAddress = new Map(recipients.map((r) => [r.address, r]));
    const depth = (r: QueueRecipient): number => {
      let d = 0;
      for (let p = r.parent ? byAddress.get(r.parent) : undefined; p && d <= MAX_DEPTH; p = p.parent ? byAddress.get(p.parent) : undefined) d++;
      return d;
    };
    const bccAdded = new Set(recipients.filter((r) => r.origin === 'bcc').map((r) => r.address));
    const children = new Set(recipients.filter((r) => r.parent).map((r) => `${r.parent}\n${r.address}`));
    const add = (child: QueueRecipient) => {
      // A recipient routed again at a retry (a forward with a kept copy) does not get its children twice.
      const key = `${child.parent}\n${child.address}`;
      if (children.has(key)) return;
      if (recipients.length >= MAX_RECIPIENTS) return;
      children.add(key);
      recipients.push(child);
      if (!byAddress.has(child.address)) byAddress.set(child.address, child);
    };

    for (let i = 0; i < recipients.length; i++) {
      const r = recipients[i];
      if (r.state !== 'pending' || r.route) continue;
      if (depth(r) > MAX_DEPTH) {
        fail(r, 554, '5.4.6', 'Too many levels of expansion: mail forwarding loop');
        continue;
      }
      // A bounce to one of our SRS senders goes back to the original sender (checked again: it may have expired).
      const srs = this.opts.srs?.reverse(r.address);
      if (srs?.kind === 'valid') {
        add({ address: srs.address, parent: r.address, origin: 'forward', state: 'pending', attempts: 0, hidden: r.hidden });
        r.state = 'delivered';
        r.lastResult = `250 2.1.5 SRS address reversed to ${srs.address}`;
        continue;
      }
      if (srs?.kind === 'invalid') {
        fail(r, 550, '5.7.1', `Invalid or expired SRS address`);
        continue;
      }
      let res;
      try {
        res = await this.opts.resolver.resolve(r.address);
      } catch (err) {
        if (!(err instanceof TempFailure)) throw err;
        r.lastResult = '451 4.4.3 Directory temporarily unavailable';
        log.warn({ to: r.address, err: err.message }, 'recipient not expanded: directory unavailable');
        continue;
      }
      // A Bcc copy does not bring further Bcc copies (no loop through the archive address).
      if (r.origin !== 'bcc') {
        for (const b of res.bcc) {
          if (bccAdded.has(b) || b === r.address) continue;
          bccAdded.add(b);
          add({ address: b, parent: r.address, origin: 'bcc', hidden: true, state: 'pending', attempts: 0 });
        }
      }
      const route = (k: QueueRecipient['route']) => {
        r.route = k;
        const key = routeKey(r)!;
        if (seen.has(key)) {
          r.state = 'delivered';
          r.lastResult = DUPLICATE;
        }
        seen.add(key);
      };
      switch (res.kind) {
        case 'mailbox':
          if (res.forward) {
            add({ address: res.forward.address.toLowerCase(), parent: r.address, origin: 'forward', state: 'pending', attempts: 0, hidden: r.hidden });
            if (!res.forward.keepCopy) {
              r.state = 'delivered';
              r.lastResult = `250 2.1.5 forwarded to ${res.forward.address}`;
              r.route = userRoute(res.user);
              break;
            }
          }
          route(userRoute(res.user));
          break;
        case 'list':
          for (const m of res.members) {
            add(
              m.primaryAddress
                ? { address: m.primaryAddress, parent: r.address, origin: 'list', state: 'pending', attempts: 0, hidden: r.hidden }
                : { address: m.login.toLowerCase(), parent: r.address, origin: 'list', route: userRoute(m), state: 'pending', attempts: 0, hidden: r.hidden },
            );
          }
          r.state = 'delivered';
          r.lastResult = `250 2.1.5 expanded to ${res.members.length} members of ${res.group.name}`;
          log.info({ to: r.address, list: res.group.name, members: res.members.length }, 'distribution list expanded');
          break;
        case 'shared':
          route({ kind: 'shared', group: res.group.name });
          break;
        case 'relay':
          route({ kind: 'remote', nexthop: res.nexthop });
          break;
        case 'external':
          route({ kind: 'remote' });
          break;
        case 'invalid':
          if (res.reason === 'disabled') fail(r, 550, '5.2.1', 'Mailbox disabled');
          else if (res.reason === 'syntax') fail(r, 553, '5.1.3', 'Bad recipient address syntax');
          else fail(r, 550, '5.1.1', 'User unknown');
          break;
      }
    }
  }

  private async deliverLocal(
    envelope: QueueEnvelope,
    message: Buffer,
    header: string,
    hops: number,
    r: QueueRecipient,
    log: Logger,
    spooled: SpooledFile | undefined,
    folders: Map<QueueRecipient, string>,
  ): Promise<void> {
    const route = r.route as Exclude<QueueRecipient['route'], { kind: 'remote' } | undefined>;
    const owner: MailboxOwner = route.kind === 'user' ? userOwner(route) : { kind: 'shared', group: route.group };
    if (hops >= this.opts.hopLimit) {
      return fail(r, 554, '5.4.6', `Too many hops (${hops} Received fields): mail loop`);
    }
    // RFC 9228 §4 / Postfix local(8): our own Delivered-To for this address already in the message means a loop.
    const deliveredTo = new RegExp(`^Delivered-To:[ \\t]*<?${r.address.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}>?[ \\t]*$`, 'im');
    if (deliveredTo.test(header)) {
      return fail(r, 554, '5.4.6', `mail forwarding loop for ${r.address}`);
    }
    const quotaMB = route.kind === 'user' ? this.opts.settings.effectiveUser(route.login).quotaMB : this.opts.settings.get('mailbox.quotaMB');
    const folder = envelope.spam && this.opts.settings.get('mailbox.moveSpamToJunk') ? 'Junk' : 'INBOX';
    const prefix = localDeliveryPrefix(envelope.from, r.address);
    // The spool file is this very Maildir file (same prefix, then the message): linked, not written again.
    const linkFrom = spooled?.prefix === prefix ? spooled.path : undefined;
    if (route.kind === 'user' && this.opts.sieve && this.opts.enqueue) {
      const sieve = this.opts.sieve;
      const done = await this.sieveLocks.run(route.guid ?? route.login.toLowerCase(), async () => {
        let plan: DeliveryPlan | undefined;
        try {
          plan = await sieve.plan({ owner: owner as Extract<MailboxOwner, { kind: 'user' }>, envelope, recipient: r.address, message, keepFolder: folder });
        } catch (err) {
          if (err instanceof TempFailure) {
            r.lastResult = '451 4.4.3 Directory temporarily unavailable';
            r.status = '4.4.3';
            log.warn({ to: r.address, err: err.message }, 'sieve: user addresses unavailable; will retry');
            return true;
          }
          // A bug must not lose the message: it is delivered as it would be without Sieve.
          log.error({ to: r.address, err }, 'sieve: delivery plan failed; delivering without Sieve');
          return false;
        }
        await this.deliverPlan(envelope, r, owner, route.login, plan, quotaMB, prefix, linkFrom, log, folders);
        return true;
      });
      if (done) return;
    }
    try {
      const d = await this.opts.store.deliver(owner, message, { folder, quotaBytes: quotaMB > 0 ? quotaMB * 1024 * 1024 : 0, prefix, linkFrom });
      this.opts.onDelivered?.(owner, folder);
      folders.set(r, folder);
      r.state = 'delivered';
      r.deliveredAt = new Date().toISOString();
      r.lastResult = `250 2.0.0 delivered to ${route.kind === 'user' ? 'mailbox' : 'shared folder'} ${route.kind === 'user' ? route.login : route.group} (${folder})`;
      log.info({ to: r.address, [route.kind === 'user' ? 'login' : 'group']: route.kind === 'user' ? route.login : route.group, folder, size: d.size, result: 'delivered' }, `delivered to ${r.address}`);
    } catch (err) {
      if (err instanceof QuotaExceeded) {
        fail(r, 552, '5.2.2', `Mailbox full: ${err.message}`);
        log.info({ to: r.address, result: 'bounced', reason: 'quota' }, 'mailbox over quota');
        return;
      }
      r.lastResult = `451 4.3.0 Local delivery failed: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`;
      r.status = '4.3.0';
      log.error({ to: r.address, err }, 'local delivery failed, will retry');
    }
  }

  /**
   * Carries out what Sieve decided for one user: first the messages it sends (so that a failing disk retries the
   * whole delivery rather than losing a redirect), recorded at once so a retry sends no second vacation reply; then
   * the copies, each in its folder with its flags. At-least-once, like the rest of the queue: a retry after a failed
   * store may queue a redirect twice, never lose it.
   */
  private async deliverPlan(
    envelope: QueueEnvelope,
    r: QueueRecipient,
    owner: MailboxOwner,
    login: string,
    plan: DeliveryPlan,
    quotaMB: number,
    prefix: string,
    linkFrom: string | undefined,
    log: Logger,
    folders: Map<QueueRecipient, string>,
  ): Promise<void> {
    try {
      for (const o of plan.outgoing) {
        const from = o.keepsSender ? this.redirectSender(o.from) : o.from;
        const id = await this.opts.enqueue!(o.message, {
          from,
          recipients: [{ address: o.to, origin: 'rcpt', state: 'pending', attempts: 0 }],
          client: { address: '127.0.0.1', listener: 'local', user: login },
        });
        log.info({ to: r.address, kind: o.kind, rcpt: o.to, newId: id }, `sieve ${o.kind} queued`);
      }
      plan.sent();
    } catch (err) {
      r.lastResult = `451 4.3.0 Cannot queue the Sieve ${plan.outgoing.length === 1 ? plan.outgoing[0].kind : 'messages'}: ${(err as Error).message}`;
      r.status = '4.3.0';
      log.error({ to: r.address, err }, 'sieve: cannot queue; will retry');
      return;
    }
    let linked = false;
    try {
      for (const c of plan.copies) {
        const link: string | undefined = c.original && !linked ? linkFrom : undefined;
        linked ||= link !== undefined;
        let flags = c.flags;
        if (c.keywords.length && this.opts.keywordLetters) {
          // The letters are in the file's name, so the folder's dovecot-keywords names them first.
          flags += await this.opts.keywordLetters(owner, c.folder, c.keywords);
        }
        await this.opts.store.deliver(owner, c.message, { folder: c.folder, flags: flags || undefined, quotaBytes: quotaMB > 0 ? quotaMB * 1024 * 1024 : 0, prefix, linkFrom: link });
        this.opts.onDelivered?.(owner, c.folder);
        if (!folders.has(r)) folders.set(r, c.folder);
      }
    } catch (err) {
      if (err instanceof QuotaExceeded) {
        fail(r, 552, '5.2.2', `Mailbox full: ${err.message}`);
        log.info({ to: r.address, result: 'bounced', reason: 'quota' }, 'mailbox over quota');
        return;
      }
      r.lastResult = `451 4.3.0 Local delivery failed: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`;
      r.status = '4.3.0';
      log.error({ to: r.address, err }, 'local delivery failed, will retry');
      return;
    }
    plan.delivered();
    r.state = 'delivered';
    r.deliveredAt = new Date().toISOString();
    r.lastResult = plan.copies.length
      ? `250 2.0.0 delivered to mailbox ${login} (${plan.copies.map((c) => c.folder).join(', ')})`
      : `250 2.0.0 not stored in mailbox ${login}: ${plan.summary}`;
    log.info({ to: r.address, login, folders: plan.copies.map((c) => c.folder), sieve: plan.summary, result: 'delivered' }, `delivered to ${r.address}`);
  }

  /** A redirect leaves with the original sender, SRS-rewritten when it is not one of ours (as forwards do). */
  private redirectSender(from: string): string {
    const srs = this.opts.srs;
    if (!srs || !from) return from;
    const domain = from.slice(from.lastIndexOf('@') + 1).toLowerCase();
    if (this.opts.settings.getDomain(domain)) return from;
    return srs.forward(from);
  }

  /**
   * The envelope sender for a remote copy: SRS-rewritten when we send it on (a forward, a Bcc or list copy), the
   * sender is someone else's (not in one of our domains, like postsrsd's SRS_EXCLUDE_DOMAINS) and not null. A
   * recipient the client named itself keeps the sender it gave: the client is the one sending.
   */
  private senderFor(from: string, r: QueueRecipient): string {
    const srs = this.opts.srs;
    if (!srs || !from || r.origin === undefined || r.origin === 'rcpt') return from;
    const domain = from.slice(from.lastIndexOf('@') + 1).toLowerCase();
    if (this.opts.settings.getDomain(domain)) return from;
    return srs.forward(from);
  }

  private async deliverRemote(envelope: QueueEnvelope, message: Buffer, recipients: QueueRecipient[], log: Logger): Promise<void> {
    const groups = new Map<string, { nexthop?: string; from: string; recipients: QueueRecipient[] }>();
    for (const r of recipients) {
      if (r.state !== 'pending' || r.route?.kind !== 'remote') continue;
      const from = this.senderFor(envelope.from, r);
      const key = `${r.route.nexthop ? `nexthop:${r.route.nexthop}` : `domain:${r.address.slice(r.address.lastIndexOf('@') + 1)}`}\n${from}`;
      const group = groups.get(key) ?? { nexthop: r.route.nexthop, from, recipients: [] };
      group.recipients.push(r);
      groups.set(key, group);
    }
    for (const [key, { nexthop, from, recipients: group }] of groups) {
      let results: DeliveryResult[];
      try {
        results = await this.opts.remote.send({ queueId: envelope.id, from, recipients: group.map((r) => r.address), message, nexthop });
      } catch (err) {
        log.error({ err, relay: key.split('\n')[0] }, 'remote delivery failed, will retry');
        results = group.map((r) => ({ recipient: r.address, outcome: 'tempfail', code: 451, status: '4.4.0', detail: (err as Error).message }));
      }
      for (const r of group) {
        r.attempts++;
        const res = results.find((x) => x.recipient === r.address);
        if (!res) continue;
        r.remoteMta = res.remoteMta ?? r.remoteMta;
        if (res.outcome === 'delivered') {
          r.state = 'delivered';
          r.deliveredAt = new Date().toISOString();
          r.lastResult = res.detail ?? '250 2.0.0 Ok';
        } else {
          r.status = res.status;
          r.lastResult = res.detail.startsWith(String(res.code)) ? res.detail : `${res.code} ${res.status} ${res.detail}`;
          if (res.outcome === 'bounce') r.state = 'failed';
        }
      }
    }
  }
}
