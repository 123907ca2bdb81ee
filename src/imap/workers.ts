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
 * The in-process change hubs (store/watch.ts) are bridged: a change emitted in any process is sent, batched per
 * event-loop turn, to the primary, which tells its own listeners and every other worker. Each worker's sessions
 * re-read the folder index on `exists` as they do for a change made in their own process; a delivery made here is
 * announced to the workers (`delivered`), whose notifyDelivered syncs the folder when one of its sessions watches it.
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
  | { t: 'init'; config: LoadedConfig; logLevel: string; slot: number; slots: number }
  | { t: 'conn'; role: 'imap' | 'imaps' }
  | { t: 'adopt'; state: HandoffState }
  | { t: 'ev'; batch: BridgedChange[] }
  | { t: 'delivered'; owner: MailboxOwner; folder: string }
  | { t: 'settled'; id: number }
  | { t: 'closeUser'; login: string; reason: string }
  | { t: 'close' };

/** Messages from a worker to the primary. */
export type FromWorker =
  | { t: 'hello' }
  | { t: 'ready' }
  | { t: 'settle'; id: number }
  | { t: 'ev'; batch: BridgedChange[] }
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
  private nextId = 1;
  private restartDelay = 0;
  private closing = false;
  private readonly waiters = new Set<() => void>();
  /** Worker crashes seen (for tests and logs). */
  restarts = 0;

  constructor(opts: ImapWorkersOptions) {
    this.opts = opts;
    this.log = opts.log.child({ component: 'imap' });
  }

  /** Forks the workers and waits until each has opened the store and says it is ready. */
  async start(): Promise<void> {
    for (const [name, hub] of Object.entries(HUBS) as [HubName, (typeof HUBS)[HubName]][]) {
      this.unbridge.push(hub.addBridge((key, change) => this.send(0, [name, key, change])));
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
        if (m.t === 'hello') this.post(w, { t: 'init', config: this.opts.config, logLevel: this.opts.log.level, slot, slots: this.opts.workers });
        else if (m.t === 'handoff') this.handoff(m.slot, m.state, handle as Socket | undefined);
        else if (m.t === 'ready') {
          w.ready = true;
          this.restartDelay = 0;
          resolve();
          for (const wake of [...this.waiters]) {
            this.waiters.delete(wake);
            wake();
          }
          this.drainPending();
        } else if (m.t === 'ev') this.fromWorker(w, m.batch);
        else if (m.t === 'sessions') w.sessions = m.n;
        else if (m.t === 'settle') {
          // After this poll phase (changes read from other workers' channels in it are in the outbox by then), the
          // outbox goes out first, then the answer: the worker has every change made before it asked.
          setImmediate(() => {
            this.flush();
            this.post(w, { t: 'settled', id: m.id });
          });
        }
        else if (m.t === 'failed') reject(new Error(`imap worker could not start: ${m.error}`));
      });
      child.on('error', (err) => this.log.warn({ err, worker: id }, 'imap worker: IPC error'));
      child.once('exit', (code, signal) => {
        this.workers.delete(id);
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

  /** Changes made in a worker: this process's listeners hear them, and the other workers get them. */
  private fromWorker(w: Worker, batch: BridgedChange[]): void {
    for (const c of batch) {
      HUBS[c[0]].emitLocal(c[1], c[2] as never);
      this.outbox.push({ from: w.id, change: c });
    }
    this.schedule();
    this.opts.onWorkerChanges?.(batch);
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
    this.outbox = [];
    for (const w of this.workers.values()) {
      if (!w.ready) continue;
      const batch = out.filter((o) => o.from !== w.id).map((o) => o.change);
      if (batch.length) this.post(w, { t: 'ev', batch });
    }
  }
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
