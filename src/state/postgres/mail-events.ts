/**
 * Folder changes across the nodes of a cluster (issue 16: "IMAP IDLE and other sessions on node A see a delivery or
 * a flag change made on node B within 1 s"). The in-process hubs (store/watch.ts) are bridged through PostgreSQL
 * LISTEN/NOTIFY, one channel for the whole cluster with the changes as payload: a STORE, APPEND, COPY/MOVE or
 * EXPUNGE emitted on one node is emitted to the local listeners of every other node, and a delivery made on one
 * node makes every other node sync the folder when one of its sessions watches it (notifyDelivered).
 *
 * Why NOTIFY and not the file system: inotify (fs.watch on new/) sees only changes made by this kernel, so on a
 * shared store (NFS, CephFS) a delivery by another node is never seen, and a flag change (a rename in cur/) is not
 * watched at all.
 *
 * The hub keys are Maildir paths: they are sent relative to the mail root, so nodes may mount the store at other
 * paths. A change made while PostgreSQL is unreachable is not carried (NOTIFY is not queued): sessions elsewhere
 * see it at their next command that reads the folder (NOOP, FETCH, SELECT), as IMAP clients poll anyway.
 *
 * No NOTIFY when no other node listens (the single node on PostgreSQL: it was a statement and a commit per round
 * trip of deliveries and flag changes, for nobody). Who listens is read from pg_stat_activity: the LISTEN connection
 * of every node is named `postern mail <node>`; an unnamed connection (that of a node of the previous version,
 * whose LISTEN client had no name, or any other client) counts as a listener, so that when unsure the change is
 * sent. Read when the LISTEN connection is (re)made and every PEERS_MS. A node that joins says so on the channel
 * right after its LISTEN (`h`): the others take it for a listener at once and send it what they kept back during
 * the last REPLAY_MS (the changes of the moment between its LISTEN and their hearing of it), ahead of anything newer.
 */
import { isAbsolute, join, relative, sep } from 'node:path';
import pg from 'pg';
import type { Logger } from '../../lib/logger.js';
import type { FolderChange, MailboxListChange } from '../../store/mailbox.js';
import type { MailboxOwner } from '../../store/types.js';
import { folderEvents, mailboxListEvents, type EventHub } from '../../store/watch.js';
import { prepared } from './prepared.js';
import type { Queryable } from './queryable.js';

export const MAIL_CHANNEL = 'postern_mail';
/** PostgreSQL refuses NOTIFY payloads of 8000 bytes or more; batches are cut below that. */
const MAX_PAYLOAD = 7900;
/** How often the other listeners are counted again (a node that left stops costing a NOTIFY after this). */
const PEERS_MS = 2000;
/** Changes not sent for want of a listener are kept this long for a node that joins (its hello comes in ms). */
const REPLAY_MS = 3000;
const REPLAY_MAX = 5000;
/**
 * A NOTIFY that carries only deliveries starts at least this long after the one before it, with every delivery
 * queued meanwhile. Sent as soon as the last one was answered, deliveries 5 ms apart each made a statement of their
 * own (0.81 per message with two nodes: a round trip, a transaction and a wake-up of every listening backend each).
 * 20 ms of the 1 s the other nodes' sessions may take to see a delivery (issue 16) is what one statement per 4
 * messages costs at 200 messages a second. Hub changes (flags, expunges, appends) do not wait (see schedule()).
 */
const NOTIFY_GAP_MS = 20;

type HubName = 'folder' | 'list';
/** One carried change: hub, key relative to the mail root (absolute when outside it), the change. */
type Carried = [HubName, string, unknown];
interface Payload {
  /** Sending node. */
  n: string;
  /** Hub changes. */
  e?: Carried[];
  /** Deliveries: owner, folder. */
  d?: [MailboxOwner, string][];
  /** A node that has just started listening (hello): the others send to it from now on. */
  h?: 1;
}

export interface PgMailEventsOptions {
  /** Connection string: the LISTEN connection is a client of its own (a pool's connections come and go). */
  url: string;
  /** Where NOTIFYs are sent from (the pool). */
  db: Queryable;
  node: string;
  /** The store root (config dataDir/mail): hub keys are Maildir paths under it. */
  mailRoot: string;
  log: Logger;
  /** A delivery made on another node: the caller's notifyDelivered (and the IMAP workers', with imap.workers). */
  onDelivered(owner: MailboxOwner, folder: string): void;
  /** Changes from other nodes, after they were emitted to this process's hubs (for the IMAP workers). */
  onRemote?(batch: [HubName, string, unknown][]): void;
  hubs?: { folder: EventHub<FolderChange>; list: EventHub<MailboxListChange> };
  /** How long changes not sent for want of a listener are kept for a node that joins (REPLAY_MS). */
  replayMs?: number;
}

export class PgMailEvents {
  private readonly opts: PgMailEventsOptions;
  private readonly hubs: { folder: EventHub<FolderChange>; list: EventHub<MailboxListChange> };
  private readonly unbridge: (() => void)[] = [];
  private client: pg.Client | undefined;
  private listenGeneration = 0;
  private closed = false;
  private retryMs = 100;
  private retryTimer: NodeJS.Timeout | undefined;
  private outbox: { e: Carried[]; d: [MailboxOwner, string][] } = { e: [], d: [] };
  private flushing = false;
  /** When the last NOTIFY statement started, and the flush waiting for NOTIFY_GAP_MS to pass since. */
  private lastSent = 0;
  private gapTimer: NodeJS.Timeout | undefined;
  /** A NOTIFY statement on its way: what is queued meanwhile waits for the next one. */
  private inFlight = false;
  /** NOTIFY statements sent (tests, bench: statements per change). */
  notifies = 0;
  /** Flushes not sent because no other node listened. */
  skipped = 0;
  /**
   * Whether another node listens: undefined while unknown (then changes are sent). False only after a count of the
   * listeners found none, and no hello came after that count began.
   */
  private others: boolean | undefined;
  private peersTimer: NodeJS.Timeout | undefined;
  private lastHello = 0;
  /** What was not sent for want of a listener in the last REPLAY_MS, for a node that joins. */
  private kept: { at: number; e: Carried[]; d: [MailboxOwner, string][] }[] = [];
  /** Changes in `kept`. */
  private keptCount = 0;
  private sending: Promise<void> = Promise.resolve();
  private listening: Promise<void> | undefined;
  private markListening: (() => void) | undefined;

  constructor(opts: PgMailEventsOptions) {
    this.opts = opts;
    this.hubs = opts.hubs ?? { folder: folderEvents, list: mailboxListEvents };
  }

  /** Bridges the hubs and starts listening; resolves once LISTEN runs (retrying in the background until then). */
  start(): Promise<void> {
    for (const name of ['folder', 'list'] as const) {
      this.unbridge.push(this.hubs[name].addBridge((key, change) => this.queue({ e: [[name, this.toWire(key), change]] })));
    }
    this.listening = new Promise((resolve) => (this.markListening = resolve));
    void this.connect();
    return this.listening;
  }

  /**
   * Changes this node's hubs did not emit themselves but that were made here: those of IMAP worker processes
   * (imap.workers), which the primary tells its hubs with emitLocal, past the bridges.
   */
  publish(batch: [HubName, string, unknown][]): void {
    this.queue({ e: batch.map(([hub, key, change]) => [hub, this.toWire(key), change] as Carried) });
  }

  /** A delivery made on this node into `folder` of `owner`: the other nodes sync it if they watch it. */
  delivered(owner: MailboxOwner, folder = 'INBOX'): void {
    this.queue({ d: [[owner, folder]] });
  }

  /** Whether the LISTEN connection is up now (changes of other nodes arrive). */
  isListening(): boolean {
    return this.client !== undefined;
  }

  /**
   * A number that is new each time the LISTEN connection is made (again), undefined while it is down: a copy of the
   * shared index brought up under one generation missed no change of another node (maildir-pg-index.ts trustChanges).
   */
  generation(): number | undefined {
    return this.client ? this.listenGeneration : undefined;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const off of this.unbridge.splice(0)) off();
    if (this.retryTimer) clearTimeout(this.retryTimer);
    clearTimeout(this.gapTimer);
    clearInterval(this.peersTimer);
    this.markListening?.();
    const c = this.client;
    this.client = undefined;
    await c?.end().catch(() => undefined);
  }

  private toWire(key: string): string {
    const rel = relative(this.opts.mailRoot, key);
    return rel.startsWith('..') || isAbsolute(rel) ? key : rel.split(sep).join('/');
  }

  private fromWire(key: string): string {
    return isAbsolute(key) ? key : join(this.opts.mailRoot, ...key.split('/'));
  }

  /**
   * Changes of one event-loop turn go out together (a STORE of 500 messages is a few NOTIFYs, not 500), and so do
   * those made while the previous NOTIFY is in flight: at most one statement is on its way, and what arrives
   * meanwhile waits for it and goes in the next one. Under load (a delivery every few milliseconds, each a NOTIFY
   * of its own) that was one round trip and one commit per delivery; now it is one per round trip, and for
   * deliveries alone no sooner than NOTIFY_GAP_MS after the one before: a delivery waits at most that and one round
   * trip longer, far inside the 1 s the other nodes must see it in.
   */
  private queue(p: { e?: Carried[]; d?: [MailboxOwner, string][] }): void {
    if (this.closed) return;
    if (p.e) this.outbox.e.push(...p.e);
    if (p.d) this.outbox.d.push(...p.d);
    this.schedule();
  }

  private schedule(): void {
    if (this.closed || this.flushing || this.inFlight) return;
    if (!this.outbox.e.length && !this.outbox.d.length) return;
    this.flushing = true;
    // Only deliveries wait for the gap: a flag change, an expunge or an APPEND goes at once, as another node that
    // has not heard of it yet may find its file renamed or gone and record that as a change of its own.
    const wait = this.outbox.e.length ? 0 : this.lastSent + NOTIFY_GAP_MS - Date.now();
    if (wait > 0) this.gapTimer = setTimeout(() => this.flush(), wait);
    else setImmediate(() => this.flush());
  }

  private flush(): void {
    this.flushing = false;
    const { e } = this.outbox;
    // A delivery tells the other nodes "sync this folder if you watch it": two of the same folder in one payload
    // say nothing more than one.
    const seen = new Set<string>();
    const d = this.outbox.d.filter((x) => {
      const k = JSON.stringify(x);
      if (seen.has(k)) return false;
      seen.add(k);
      return true;
    });
    this.outbox = { e: [], d: [] };
    // Nobody else listens (one node on PostgreSQL): kept for a node that joins, without building the payloads.
    if (this.others === false) {
      if (e.length || d.length) {
        this.keep(e, d);
        this.skipped++;
      }
      return;
    }
    const payloads: string[] = [];
    let cur: Payload = { n: this.opts.node };
    let size = JSON.stringify(cur).length;
    const push = (field: 'e' | 'd', item: unknown) => {
      const len = JSON.stringify(item).length + 8;
      if (len + 40 > MAX_PAYLOAD) {
        this.opts.log.warn({ change: JSON.stringify(item).slice(0, 200) }, 'cluster: change too large for NOTIFY; not carried');
        return;
      }
      if (size + len > MAX_PAYLOAD) {
        payloads.push(JSON.stringify(cur));
        cur = { n: this.opts.node };
        size = JSON.stringify(cur).length;
      }
      ((cur[field] ??= []) as unknown[]).push(item);
      size += len;
    };
    for (const x of e) push('e', x);
    for (const x of d) push('d', x);
    if (cur.e || cur.d) payloads.push(JSON.stringify(cur));
    if (!payloads.length) return;
    // In order: PostgreSQL delivers notifications in commit order, and a pool runs queries on several connections
    // at once, so the batches go one after the other (one in flight), those of one flush in one statement (one
    // transaction).
    this.inFlight = true;
    this.lastSent = Date.now();
    this.sending = this.opts.db
      .query(prepared('SELECT pg_notify($1, p) FROM unnest($2::text[]) WITH ORDINALITY AS t(p, i) ORDER BY i'), [MAIL_CHANNEL, payloads])
      .then(
        () => undefined,
        (err: unknown) => this.opts.log.warn({ err }, 'cluster: cannot send folder changes to the other nodes'),
      )
      .finally(() => {
        this.inFlight = false;
        this.notifies++;
        this.schedule();
      });
  }

  private appName(): string {
    // application_name is cut at 63 bytes (NAMEDATALEN): compared as PostgreSQL keeps it.
    return Buffer.from(`postern mail ${this.opts.node}`).subarray(0, 63).toString();
  }

  private keep(e: Carried[], d: [MailboxOwner, string][]): void {
    const now = Date.now();
    this.kept.push({ at: now, e, d });
    // A running count: summed anew on every flush it grew with the backlog (a few thousand entries under load).
    this.keptCount += e.length + d.length;
    while (this.kept.length && (this.kept[0]!.at < now - (this.opts.replayMs ?? REPLAY_MS) || this.keptCount > REPLAY_MAX)) {
      const k = this.kept.shift()!;
      this.keptCount -= k.e.length + k.d.length;
    }
  }

  /** Another node listens from now on: what was kept back goes first, ahead of what is queued. */
  private joined(): void {
    this.lastHello = Date.now();
    const was = this.others;
    this.others = true;
    if (was !== false) return;
    const cutoff = Date.now() - (this.opts.replayMs ?? REPLAY_MS);
    const kept = this.kept.filter((k) => k.at >= cutoff);
    this.kept = [];
    this.keptCount = 0;
    this.outbox = { e: [...kept.flatMap((k) => k.e), ...this.outbox.e], d: [...kept.flatMap((k) => k.d), ...this.outbox.d] };
    this.schedule();
  }

  /** Counts the other nodes' LISTEN connections (pg_stat_activity); unknown (send) when that cannot be read. */
  private async countPeers(): Promise<void> {
    const started = Date.now();
    try {
      const r = await this.opts.db.query(
        `SELECT count(*) AS n FROM pg_stat_activity
          WHERE datname = current_database() AND backend_type = 'client backend' AND pid <> pg_backend_pid()
            AND (coalesce(application_name, '') = '' OR (application_name LIKE 'postern mail %' AND application_name <> $1))`,
        [this.appName()],
      );
      const n = Number((r.rows[0] as { n: unknown } | undefined)?.n ?? 1);
      if (n > 0) this.joined();
      // "Nobody" only while this node listens (it would not hear a newcomer's hello otherwise), and not when a
      // hello came while counting (newer than the count).
      else if (this.client && this.lastHello < started) this.others = false;
    } catch {
      this.others = undefined;
    }
  }

  private async connect(): Promise<void> {
    if (this.closed) return;
    const client = new pg.Client({ connectionString: this.opts.url, keepAlive: true, connectionTimeoutMillis: 10_000, application_name: this.appName() });
    // Without a listener an 'error' (PostgreSQL restarted) would throw from the event emitter and end the process.
    client.on('error', (err) => this.lost(client, err));
    client.on('end', () => this.lost(client));
    client.on('notification', (m) => {
      if (m.channel === MAIL_CHANNEL && m.payload) this.received(m.payload);
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${MAIL_CHANNEL}`);
    } catch (err) {
      this.opts.log.warn({ err }, 'cluster: cannot listen for folder changes of other nodes; retrying');
      client.removeAllListeners('end');
      client.on('error', () => undefined);
      await client.end().catch(() => undefined);
      this.retry();
      return;
    }
    if (this.closed) {
      await client.end().catch(() => undefined);
      return;
    }
    this.listenGeneration++;
    this.client = client;
    this.retryMs = 100;
    // Hello: the nodes that listen send to this one from now on (and what they kept back meanwhile).
    void this.opts.db.query('SELECT pg_notify($1, $2)', [MAIL_CHANNEL, JSON.stringify({ n: this.opts.node, h: 1 })]).catch(() => undefined);
    await this.countPeers();
    if (!this.peersTimer) {
      this.peersTimer = setInterval(() => void this.countPeers(), PEERS_MS);
      this.peersTimer.unref();
    }
    this.markListening?.();
  }

  private lost(client: pg.Client, err?: unknown): void {
    if (this.client !== client) return;
    this.client = undefined;
    // Not hearing hellos meanwhile: send until the listeners are counted again.
    this.others = undefined;
    if (this.closed) return;
    this.opts.log.warn({ err }, 'cluster: lost the LISTEN connection; reconnecting');
    client.removeAllListeners('end');
    client.on('error', () => undefined);
    void client.end().catch(() => undefined);
    this.retry();
  }

  private retry(): void {
    if (this.closed) return;
    const ms = this.retryMs;
    this.retryMs = Math.min(this.retryMs * 2, 5000);
    this.retryTimer = setTimeout(() => void this.connect(), ms);
    this.retryTimer.unref();
  }

  private received(raw: string): void {
    let p: Payload;
    try {
      p = JSON.parse(raw) as Payload;
    } catch {
      return;
    }
    if (p.n === this.opts.node) return; // our own, already told to our listeners
    if (p.h) return this.joined();
    const batch: [HubName, string, unknown][] = [];
    for (const [hub, key, change] of p.e ?? []) {
      if (hub !== 'folder' && hub !== 'list') continue;
      const local = this.fromWire(key);
      (this.hubs[hub] as EventHub<unknown>).emitLocal(local, change);
      batch.push([hub, local, change]);
    }
    if (batch.length) this.opts.onRemote?.(batch);
    for (const [owner, folder] of p.d ?? []) this.opts.onDelivered(owner, folder);
  }
}
