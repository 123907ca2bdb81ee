/**
 * IMAP on more than one core (issue 11, `imap.workers: N`). Node runs one event loop per process; Dovecot's imap
 * processes use both cores of this machine, one postern process one.
 *
 * The design: this (primary) process keeps the IMAP listeners and hands each accepted TCP connection, paused and
 * before any byte is read, to one of N worker processes (child_process.fork + send(handle)); the worker with the
 * fewest sessions gets it. The worker runs the same ImapSession over the same Maildir store (the folder indexes are
 * SQLite in WAL mode with a busy timeout; UIDs are given under dovecot-uidlist's dot-lock, which is cross-process
 * by design, from the index's UIDNEXT read inside that lock). Delivery, the queue, POP3 and the admin API stay here.
 *
 * Why processes and not worker_threads: a net.Socket cannot be transferred to a worker thread, only to a process.
 * Why the primary accepts instead of node:cluster's shared listeners: the port is bound (and known, with port 0)
 * before any worker runs, several servers in one process (tests) never share a cluster handle key, a worker's crash
 * never closes a listener, and the balance is by live sessions rather than by accepts (IMAP sessions are long).
 *
 * Sessions of one mailbox in one process: a plain connection whose LOGIN (or AUTHENTICATE) succeeds in a worker that
 * is not the mailbox's home (homeSlot: a hash of the AD object over the worker slots) is sent back here, reading
 * stopped and nothing answered, and handed to the home worker, which completes the login and answers it
 * (ImapSession.handOff / adopt). Sessions of one mailbox then share one process's folder state, and a change made
 * by one of them costs the others no re-read of the folder index. A TLS connection cannot move (its keys live in
 * the process that did the handshake): it stays where it landed, and the bridge below keeps it in step.
 *
 * The in-process change hubs (store/watch.ts) are bridged, by interest: each process tells the primary which keys
 * (folders, mailbox lists) its sessions listen to (`watch`), and the primary tells each worker which keys some other
 * process listens to (`want`). A change is sent, batched per event-loop turn, to the primary only when its key is
 * wanted elsewhere, and the primary passes it on only to the processes that watch it. With logins moved to their
 * mailbox's home worker, most changes are wanted nowhere else and cost no IPC at all (measured: the primary spent
 * 0.3–0.4 ms CPU per imaptest operation relaying every change to every worker, and each worker as much again
 * parsing changes nobody there listened to). Each worker's sessions re-read the folder index on `exists` as they
 * do for a change made in their own process; a delivery made here is announced to the workers (`delivered`), whose
 * notifyDelivered syncs the folder when one of its sessions watches it.
 *
 * A new watcher must not miss a change made elsewhere between its read of the folder and the moment the writer
 * hears that the key is wanted: every process keeps the changes it did not send (and the primary those it passed
 * on) for HISTORY_MS, and a new watch makes them replay theirs for that key to the new watcher (`replay`). A
 * replayed change the watcher's read already had is harmless (flags equal to the shown ones are skipped, an
 * `exists` re-reads the index, an expunge of a UID not shown is ignored). The watcher's next NOOP/CHECK/EXPUNGE
 * (settle) is answered only once every replay asked for it arrived.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { createServer, type Server, type Socket } from 'node:net';
import type { UserEntry } from '../directory/types.js';
import { stopReading, type HandoffState } from './connection.js';
import { fileURLToPath } from 'node:url';
import type { LoadedConfig } from '../config/load.js';
import type { Logger } from '../lib/logger.js';
import type { MailboxOwner } from '../store/types.js';
import { folderEvents, mailboxListEvents } from '../store/watch.js';

export type HubName = 'folder' | 'list';
/** One bridged change: which hub, its key (a Maildir path) and the change itself. */
export type BridgedChange = [HubName, string, unknown];

/** Messages from the primary to a worker. */
export type ToWorker =
  | { t: 'init'; config: LoadedConfig; logLevel: string; slot: number; slots: number; wantAll: boolean }
  | { t: 'conn'; role: 'imap' | 'imaps' }
  | { t: 'adopt'; state: HandoffState }
  | { t: 'ev'; batch: BridgedChange[] }
  /** Whether some other process (or the cluster, for everything) listens to a key: the worker sends its changes. */
  | { t: 'want'; hub: HubName; key: string; on: boolean }
  /** Send the changes of this key that were not sent (the recent ones) to worker `for` (a new watcher of it). */
  | { t: 'replay'; hub: HubName; key: string; for: number }
  | { t: 'delivered'; owner: MailboxOwner; folder: string }
  | { t: 'settled'; id: number }
  | { t: 'closeUser'; login: string; reason: string }
  | { t: 'close' };

/** Messages from a worker to the primary. */
export type FromWorker =
  | { t: 'hello' }
  | { t: 'ready' }
  | { t: 'settle'; id: number }
  /** Changes made in the worker; with `to`, a replay only for that worker (0: the primary). */
  | { t: 'ev'; batch: BridgedChange[]; to?: number }
  /** The worker's sessions listen to a key now (on), or no longer. */
  | { t: 'watch'; hub: HubName; key: string; on: boolean }
  /** The replay asked for worker `for` went (its `ev` was sent before this). */
  | { t: 'replayed'; for: number }
  | { t: 'sessions'; n: number }
  | { t: 'failed'; error: string }
  | { t: 'handoff'; slot: number; state: HandoffState };

/**
 * The worker slot (0 … slots-1) whose process serves a mailbox: FNV-1a of the user's AD object (objectGUID, else the
 * login) modulo the slots. A restarted worker takes the slot of the one it replaces, so the mapping stays.
 */
export function homeSlot(user: Pick<UserEntry, 'guid' | 'login'>, slots: number): number {
  const key = user.guid ?? user.login.toLowerCase();
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  return (h >>> 0) % slots;
}

export const HUBS = { folder: folderEvents, list: mailboxListEvents } as const;

/**
 * How long a change that was not sent (or, in the primary, that was passed on) is kept for a new watcher's replay:
 * far longer than a watch takes to reach the writer through the primary, even on a machine loaded many times over.
 */
export const HISTORY_MS = 10_000;

/** Recent changes, oldest first, dropped past HISTORY_MS. */
export class ChangeHistory {
  private items: { at: number; from: number; change: BridgedChange }[] = [];
  private head = 0;

  push(from: number, change: BridgedChange, now = Date.now()): void {
    this.prune(now);
    this.items.push({ at: now, from, change });
  }

  /** The kept changes of one key made by anyone but `except`, oldest first. */
  of(hub: HubName, key: string, except: number, now = Date.now()): BridgedChange[] {
    this.prune(now);
    const out: BridgedChange[] = [];
    for (let i = this.head; i < this.items.length; i++) {
      const it = this.items[i]!;
      if (it.from !== except && it.change[0] === hub && it.change[1] === key) out.push(it.change);
    }
    return out;
  }

  private prune(now: number): void {
    const items = this.items;
    while (this.head < items.length && now - items[this.head]!.at > HISTORY_MS) this.head++;
    // Compacted now and then, not at every drop: the array is shifted in one go.
    if (this.head > 1024 && this.head * 2 > items.length) {
      this.items = items.slice(this.head);
      this.head = 0;
    }
  }
}

/** The map key of a hub's key. */
const interestKey = (hub: HubName, key: string): string => `${hub}\0${key}`;

interface Worker {
  id: number;
  /** Its place in homeSlot's mapping. */
  slot: number;
  child: ChildProcess;
  ready: boolean;
  sessions: number;
  startedAt: number;
}

export interface ImapWorkersOptions {
  config: LoadedConfig;
  workers: number;
  log: Logger;
  /** Changes made in the workers, after this process's hubs heard them (a cluster carries them to other nodes). */
  onWorkerChanges?: (batch: BridgedChange[]) => void;
}

/** Restart delay after a crash: doubles for a worker that keeps dying young, up to this. */
const MAX_RESTART_DELAY_MS = 10_000;
/** A worker that lived this long restarts at once after a crash. */
const HEALTHY_AFTER_MS = 10_000;
/** Connections held while no worker is ready (all restarting); past this they are refused with BYE. */
const MAX_PENDING = 1000;

export class ImapWorkers {
  private readonly opts: ImapWorkersOptions;
  private readonly log: Logger;
  private readonly workers = new Map<number, Worker>();
  private readonly pending: { role: 'imap' | 'imaps'; socket: Socket }[] = [];
  private readonly servers: Server[] = [];
  private readonly unbridge: (() => void)[] = [];
  /** Changes to send, with the worker they came from (0: this process), flushed once per event-loop turn. */
  private outbox: { from: number; change: BridgedChange }[] = [];
  private flushing = false;
  /** Who listens to each hub key (interestKey): worker ids, 0 for this process's own listeners. */
  private readonly watchers = new Map<string, Set<number>>();
  /** The changes passed on recently, for a new watcher's replay (ChangeHistory). */
  private readonly history = new ChangeHistory();
  /** Replays asked for a worker that have not arrived yet: its settles wait for them. By watcher, by worker asked. */
  private readonly replaying = new Map<number, Map<number, number>>();
  /** Settles waiting for replays, by worker. */
  private readonly settleWaiting = new Map<number, (() => void)[]>();
  private nextId = 1;
  private restartDelay = 0;
  private closing = false;
  private readonly waiters = new Set<() => void>();
  /** Worker crashes seen (for tests and logs). */
  restarts = 0;
  /** Changes passed on to workers (for tests: a change nobody elsewhere listens to is not carried). */
  carried = 0;

  constructor(opts: ImapWorkersOptions) {
    this.opts = opts;
    this.log = opts.log.child({ component: 'imap' });
  }

  /** Forks the workers and waits until each has opened the store and says it is ready. */
  async start(): Promise<void> {
    for (const [name, hub] of Object.entries(HUBS) as [HubName, (typeof HUBS)[HubName]][]) {
      this.unbridge.push(hub.addBridge((key, change) => this.send(0, [name, key, change])));
      // This process's own listeners (none while the workers serve IMAP, but a hub may have others) count as id 0.
      this.unbridge.push(hub.onInterest((key, on) => this.watch(0, name, key, on)));
      for (const key of hub.watchedKeys()) this.watch(0, name, key, true);
    }
    const ready = [...Array(this.opts.workers)].map((_, slot) => this.spawn(slot));
    await Promise.all(ready);
  }

  /** The pids of the live workers (tests kill one). */
  pids(): number[] {
    return [...this.workers.values()].filter((w) => w.ready && w.child.pid !== undefined).map((w) => w.child.pid!);
  }

  /** Sessions of each ready worker, by pid (tests check where connections landed). */
  sessionsByPid(): Map<number, number> {
    return new Map([...this.workers.values()].filter((w) => w.ready && w.child.pid !== undefined).map((w) => [w.child.pid!, w.sessions]));
  }

  /** Resolves when `n` workers are ready (after a restart). */
  async whenReady(n = this.opts.workers): Promise<void> {
    while (!this.closing && [...this.workers.values()].filter((w) => w.ready).length < n) {
      await new Promise<void>((resolve) => this.waiters.add(resolve));
    }
  }

  /** An IMAP listener whose connections are served by the workers. */
  async listen(opts: { port: number; host?: string; secure: boolean }): Promise<{ port: number; sessionCount(): number; close(): Promise<void> }> {
    const role = opts.secure ? 'imaps' : 'imap';
    // Paused: not a byte is read here, so the worker's TLS handshake (or STARTTLS) sees everything the client sent.
    const server = createServer({ pauseOnConnect: true }, (socket) => this.dispatch(role, socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.port, opts.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.servers.push(server);
    const address = server.address();
    const port = typeof address === 'object' && address ? address.port : opts.port;
    this.log.info({ port, secure: opts.secure, workers: this.opts.workers }, 'imap listening (worker processes)');
    return {
      port,
      sessionCount: () => [...this.workers.values()].reduce((n, w) => n + w.sessions, 0),
      // A listener whose connections went to child processes closes only once those are closed (Node asks each
      // child): the workers are told to close (BYE to their sessions) at the same time.
      close: async () => {
        await Promise.all([new Promise<void>((resolve) => server.close(() => resolve())), this.close()]);
      },
    };
  }

  /** A delivery made in this process: workers whose sessions watch the folder sync it. */
  delivered(owner: MailboxOwner, folder = 'INBOX'): void {
    for (const w of this.workers.values()) if (w.ready) this.post(w, { t: 'delivered', owner, folder });
  }

  /** AD took the user's access away (directory/watch.ts): every worker closes the user's sessions. */
  closeUser(login: string, reason: string): void {
    for (const w of this.workers.values()) if (w.ready) this.post(w, { t: 'closeUser', login, reason });
  }

  private closed: Promise<void> | undefined;

  close(): Promise<void> {
    this.closed ??= this.shutdown();
    return this.closed;
  }

  private async shutdown(): Promise<void> {
    this.closing = true;
    for (const off of this.unbridge.splice(0)) off();
    for (const p of this.pending.splice(0)) p.socket.destroy();
    for (const wake of this.waiters) wake();
    await Promise.all(
      [...this.workers.values()].map(
        (w) =>
          new Promise<void>((resolve) => {
            if (w.child.exitCode !== null || w.child.signalCode !== null) return resolve();
            // The worker says BYE to its sessions and closes the store; one that does not exit in time is killed.
            const timer = setTimeout(() => w.child.kill('SIGKILL'), 10_000);
            w.child.once('exit', () => {
              clearTimeout(timer);
              resolve();
            });
            if (!this.post(w, { t: 'close' })) w.child.kill('SIGKILL');
          }),
      ),
    );
    this.workers.clear();
  }

  private spawn(slot: number): Promise<void> {
    const id = this.nextId++;
    const child = fork(workerEntry(), [], { execArgv: workerExecArgv(), stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const w: Worker = { id, slot, child, ready: false, sessions: 0, startedAt: Date.now() };
    this.workers.set(id, w);
    return new Promise<void>((resolve, reject) => {
      child.on('message', (m: FromWorker, handle?: unknown) => {
        this.log.trace({ worker: id, message: m.t }, 'imap worker: message');
        // The worker asks once it listens: a message sent before its module ran could find no listener.
        if (m.t === 'hello') this.post(w, { t: 'init', config: this.opts.config, logLevel: this.opts.log.level, slot, slots: this.opts.workers, wantAll: this.opts.onWorkerChanges !== undefined });
        else if (m.t === 'handoff') this.handoff(m.slot, m.state, handle as Socket | undefined);
        else if (m.t === 'ready') {
          w.ready = true;
          this.restartDelay = 0;
          // A worker started after others (a restart) hears which keys they listen to; it has nothing to replay.
          for (const [k, ids] of this.watchers) {
            if (ids.size === 0) continue;
            const [hub, key] = splitInterestKey(k);
            this.post(w, { t: 'want', hub, key, on: true });
          }
          resolve();
          for (const wake of [...this.waiters]) {
            this.waiters.delete(wake);
            wake();
          }
          this.drainPending();
        } else if (m.t === 'ev') this.fromWorker(w, m.batch, m.to);
        else if (m.t === 'watch') this.watch(w.id, m.hub, m.key, m.on);
        else if (m.t === 'replayed') this.replayed(m.for, w.id);
        else if (m.t === 'sessions') w.sessions = m.n;
        else if (m.t === 'settle') {
          // After this poll phase (changes read from other workers' channels in it are in the outbox by then), the
          // outbox goes out first, then the answer: the worker has every change made before it asked. A replay
          // still on its way to it (a key it began to watch) comes first.
          const answer = () =>
            setImmediate(() => {
              this.flush();
              this.post(w, { t: 'settled', id: m.id });
            });
          if (this.replaying.get(w.id)?.size) {
            const list = this.settleWaiting.get(w.id) ?? [];
            list.push(answer);
            this.settleWaiting.set(w.id, list);
          } else answer();
        }
        else if (m.t === 'failed') reject(new Error(`imap worker could not start: ${m.error}`));
      });
      child.on('error', (err) => this.log.warn({ err, worker: id }, 'imap worker: IPC error'));
      child.once('exit', (code, signal) => {
        this.workers.delete(id);
        // Its watches end with it, and no replay it was asked for will come.
        for (const [k, ids] of [...this.watchers]) {
          if (!ids.has(id)) continue;
          const [hub, key] = splitInterestKey(k);
          this.watch(id, hub, key, false);
        }
        this.replaying.delete(id);
        this.settleWaiting.delete(id);
        for (const watcher of [...this.replaying.keys()]) this.replayed(watcher, id, true);
        if (!w.ready) reject(new Error(`imap worker exited before it was ready (code ${code}, signal ${signal})`));
        if (this.closing) return;
        this.restarts++;
        // Its sessions are gone with it (their sockets were its own); clients reconnect to the others.
        const young = Date.now() - w.startedAt < HEALTHY_AFTER_MS;
        this.restartDelay = young ? Math.min(Math.max(this.restartDelay * 2, 250), MAX_RESTART_DELAY_MS) : 0;
        this.log.error({ worker: id, pid: child.pid, code, signal, sessions: w.sessions, restartInMs: this.restartDelay }, 'imap worker exited; starting another');
        setTimeout(() => {
          if (!this.closing) this.spawn(slot).catch((err: unknown) => this.log.error({ err }, 'imap worker: restart failed'));
        }, this.restartDelay).unref();
      });
    });
  }

  private post(w: Worker, m: ToWorker, handle?: Socket, done?: (err: Error | null) => void): boolean {
    if (!w.child.connected) return false;
    try {
      return handle ? w.child.send(m, handle, { keepOpen: false }, done) : w.child.send(m);
    } catch (err) {
      this.log.warn({ err, worker: w.id, message: m.t }, 'imap worker: cannot send');
      return false;
    }
  }

  /** The ready worker with the fewest sessions gets the connection; with none ready it waits (a restart). */
  private dispatch(role: 'imap' | 'imaps', socket: Socket, tried = new Set<number>()): void {
    let best: Worker | undefined;
    for (const w of this.workers.values()) {
      if (!w.ready || tried.has(w.id) || !w.child.connected) continue;
      if (!best || w.sessions < best.sessions) best = w;
    }
    if (!best) {
      if (this.closing || this.pending.length >= MAX_PENDING) {
        socket.end('* BYE Server busy, try again later\r\n');
        return;
      }
      this.pending.push({ role, socket });
      return;
    }
    const w = best;
    // Counted at once, so that a burst of connections spreads before the worker's own count comes back.
    w.sessions++;
    tried.add(w.id);
    const sent = this.post(w, { t: 'conn', role }, socket, (err) => {
      if (err) {
        w.sessions--;
        if (!socket.destroyed) this.dispatch(role, socket, tried);
      }
    });
    if (!sent && !socket.destroyed && w.child.connected === false) {
      w.sessions--;
      this.dispatch(role, socket, tried);
    }
  }

  /**
   * A logged-in connection on its way to the mailbox's home worker (ImapSession.handOff). Node made it a socket that
   * reads: reading stops before anything else, or bytes read here would be lost with the handle. With the home
   * worker down (restarting), any ready worker completes the login.
   */
  private handoff(slot: number, state: HandoffState, socket: Socket | undefined): void {
    if (!socket) return;
    if (!stopReading(socket)) {
      socket.destroy();
      return;
    }
    let target: Worker | undefined;
    for (const w of this.workers.values()) {
      if (!w.ready || !w.child.connected) continue;
      if (w.slot === slot) {
        target = w;
        break;
      }
      if (!target || w.sessions < target.sessions) target = w;
    }
    if (!target || this.closing) {
      socket.destroy();
      return;
    }
    const w = target;
    w.sessions++;
    const sent = this.post(w, { t: 'adopt', state }, socket, (err) => {
      if (err) {
        w.sessions--;
        socket.destroy();
      }
    });
    // false also means "queued" (a handle waits for the ACK of the one before, or the channel is full): only a
    // channel that is gone lost it.
    if (!sent && !w.child.connected) {
      w.sessions--;
      socket.destroy();
    }
  }

  private drainPending(): void {
    for (const p of this.pending.splice(0)) if (!p.socket.destroyed) this.dispatch(p.role, p.socket);
  }

  /**
   * Changes made in a worker: this process's listeners hear them, and the workers that watch their keys get them.
   * A replay (`to`) goes to its one watcher only, and not to the cluster (it was published, or not wanted, then).
   */
  private fromWorker(w: Worker, batch: BridgedChange[], to?: number): void {
    if (to !== undefined) {
      if (to === 0) for (const c of batch) HUBS[c[0]].emitLocal(c[1], c[2] as never);
      else {
        const target = this.workers.get(to);
        if (target?.ready) this.post(target, { t: 'ev', batch });
      }
      for (const c of batch) this.history.push(w.id, c);
      return;
    }
    for (const c of batch) {
      HUBS[c[0]].emitLocal(c[1], c[2] as never);
      this.outbox.push({ from: w.id, change: c });
    }
    this.schedule();
    this.opts.onWorkerChanges?.(batch);
  }

  /**
   * A process (worker id, 0: this one) begins or stops listening to a key. The others learn whether the key is
   * wanted elsewhere; a new watcher gets the recent changes of the key that it may have missed: those this process
   * passed on (from its history) and those each worker kept back (a `replay` it is asked for).
   */
  private watch(id: number, hub: HubName, key: string, on: boolean): void {
    const k = interestKey(hub, key);
    let ids = this.watchers.get(k);
    if (on) {
      if (ids?.has(id)) return;
      // What is waiting goes out to the watchers as they were; the history has it, for the new one.
      this.flush();
      if (!ids) this.watchers.set(k, (ids = new Set()));
      ids.add(id);
      const missed = this.history.of(hub, key, id);
      if (missed.length) {
        if (id === 0) for (const c of missed) HUBS[c[0]].emitLocal(c[1], c[2] as never);
        else {
          const w = this.workers.get(id);
          if (w) this.post(w, { t: 'ev', batch: missed });
        }
      }
      for (const w of this.workers.values()) {
        if (w.id === id || !w.child.connected) continue;
        // Wanted for w now, if nobody but w listened before.
        if (ids.size === 1 || (ids.size === 2 && ids.has(w.id))) this.post(w, { t: 'want', hub, key, on: true });
        if (id === 0 || this.workers.has(id)) {
          this.post(w, { t: 'replay', hub, key, for: id });
          // post's false may mean "queued" (a full channel): the replay comes all the same, unless w is gone.
          if (w.child.connected) {
            const by = this.replaying.get(id) ?? new Map<number, number>();
            by.set(w.id, (by.get(w.id) ?? 0) + 1);
            this.replaying.set(id, by);
          }
        }
      }
    } else {
      if (!ids?.delete(id)) return;
      if (ids.size === 0) this.watchers.delete(k);
      for (const w of this.workers.values()) {
        if (w.id === id || !w.child.connected) continue;
        // Wanted by nobody but w (or nobody) now.
        if (ids.size === 0 || (ids.size === 1 && ids.has(w.id))) this.post(w, { t: 'want', hub, key, on: false });
      }
    }
  }

  /** Worker `from` sent the replay asked for `watcher` (or died: `all`): settles waiting only for it are answered. */
  private replayed(watcher: number, from: number, all = false): void {
    const by = this.replaying.get(watcher);
    if (!by) return;
    const n = (by.get(from) ?? 0) - 1;
    if (n > 0 && !all) by.set(from, n);
    else by.delete(from);
    if (by.size > 0) return;
    this.replaying.delete(watcher);
    const waiting = this.settleWaiting.get(watcher);
    this.settleWaiting.delete(watcher);
    for (const answer of waiting ?? []) answer();
  }

  /** Changes made on another node of a cluster (state/postgres/mail-events.ts): told to every worker. */
  relay(batch: BridgedChange[]): void {
    for (const c of batch) this.send(0, c);
  }

  private send(from: number, change: BridgedChange): void {
    this.outbox.push({ from, change });
    this.schedule();
  }

  private schedule(): void {
    if (this.flushing) return;
    this.flushing = true;
    setImmediate(() => this.flush());
  }

  private flush(): void {
    this.flushing = false;
    const out = this.outbox;
    if (out.length === 0) return;
    this.outbox = [];
    for (const o of out) this.history.push(o.from, o.change);
    for (const w of this.workers.values()) {
      if (!w.ready) continue;
      const batch: BridgedChange[] = [];
      for (const o of out) if (o.from !== w.id && this.watchers.get(interestKey(o.change[0], o.change[1]))?.has(w.id)) batch.push(o.change);
      if (batch.length) {
        this.carried += batch.length;
        this.post(w, { t: 'ev', batch });
      }
    }
  }
}

function splitInterestKey(k: string): [HubName, string] {
  const i = k.indexOf('\0');
  return [k.slice(0, i) as HubName, k.slice(i + 1)];
}

/** worker-main next to this file, .ts under tsx (tests, `postern serve` from the sources) or .js when built. */
function workerEntry(): string {
  return fileURLToPath(new URL(import.meta.url.endsWith('.ts') ? './worker-main.ts' : './worker-main.js', import.meta.url));
}

/**
 * The worker runs the same sources: under tsx (bin/postern.js registers it through its API, so process.execArgv
 * does not name it) it needs `--import tsx`. The test runner's own flags are not passed on.
 */
function workerExecArgv(): string[] {
  const args = process.execArgv.filter((a) => !a.startsWith('--test'));
  if (import.meta.url.endsWith('.ts') && !args.some((a) => a.includes('tsx'))) args.push('--import', import.meta.resolve('tsx'));
  return args;
}
