/**
 * SMTP on more than one core (issue 11, `smtp.workers: N`). One Node process has one event loop: parsing SMTP,
 * running the hooks and writing the spool for 20 sessions, and delivering what they queued, all on one core, was
 * what kept postern behind Postfix, whose smtpd, cleanup, qmgr and virtual processes use both cores of this machine.
 *
 * The design (as src/imap/workers.ts does for IMAP): this (main) process keeps the port-25 listener and hands each
 * accepted TCP connection, paused and before any byte is read, to the worker process with the fewest sessions
 * (child_process.fork + send(handle)). The worker runs the whole SMTP session with the same hooks as the main
 * process (policy, resolver, filters, trace) and commits the message to the same spool itself: its 250 waits for
 * its own fsyncs, exactly as here (DESIGN.md §3 "Queue"; group commit among the worker's sessions). It then tells
 * this process (`enqueued`), whose scheduler delivers the message. Should that notice be lost (the worker killed
 * between its 250 and the notice), the scheduler's periodic spool scan finds the message: at-least-once holds.
 *
 * What must agree across processes is kept here and asked over IPC: the send limits (one set of counters, so a
 * user's sessions spread over the workers are limited together), smtp.maxClients (all listeners, all workers),
 * and the counters of /metrics. Submission and smtps stay in this process (they offer BURL, which reads the store).
 * Delivery, the queue's scheduler and its recovery at start stay here too: only this process holds the spool lock.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { createServer, type Server, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { LoadedConfig } from '../config/load.js';
import { SmtpError } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import type { QueueEnvelope } from '../queue/types.js';
import type { Spool } from '../queue/spool.js';
import type { LimitSubject, SendLimitsPort } from './session.js';
import type { Rejection, SmtpStats } from './stats.js';

/** An SmtpError as it crosses the IPC channel. */
export interface WireError {
  code: number;
  enhanced: string;
  text: string;
}

/** Messages from the main process to a worker. */
export type ToSmtpWorker =
  | { t: 'init'; config: LoadedConfig; logLevel: string; filtersOff: string[] }
  | { t: 'conn' }
  | { t: 'limit'; req: number; err: WireError | null }
  | { t: 'close' };

/** Messages from a worker to the main process. */
export type FromSmtpWorker =
  | { t: 'hello' }
  | { t: 'ready' }
  | { t: 'failed'; error: string }
  | { t: 'sessions'; n: number }
  | { t: 'enqueued'; envelope: QueueEnvelope }
  | { t: 'limit'; req: number; op: 'mail' | 'rcpt'; subject: Omit<LimitSubject, 'log'> }
  | { t: 'accepted'; id: string }
  | { t: 'release'; id: string }
  | { t: 'received'; listener: string }
  | { t: 'rejected'; rejection: Omit<Rejection, 'at'> };

interface Worker {
  id: number;
  child: ChildProcess;
  ready: boolean;
  sessions: number;
  startedAt: number;
  /** SMTP session ids that asked for a send limit and have not released it: released here if the worker dies. */
  limited: Set<string>;
  /** Messages this worker queued (for tests and the log). */
  enqueued: number;
}

export interface SmtpWorkersOptions {
  config: LoadedConfig;
  workers: number;
  log: Logger;
  /** The spool of this process: a message a worker queued is announced on it, as if enqueued here. */
  spool: Spool;
  sendLimits?: SendLimitsPort;
  stats?: Pick<SmtpStats, 'countReceived' | 'countRejected'>;
  /** SMTP sessions of this process's own listeners (submission, smtps): smtp.maxClients counts all together. */
  localSessions?: () => number;
  /** Filter switches turned off for this run (embedded defaults without clamd or spamd). */
  filtersOff?: ReadonlySet<string>;
}

const MAX_RESTART_DELAY_MS = 10_000;
const HEALTHY_AFTER_MS = 10_000;
/** Connections held while no worker is ready (all restarting); past this they get a 421. */
const MAX_PENDING = 1000;

export function toWire(err: SmtpError | null): WireError | null {
  return err ? { code: err.code, enhanced: err.enhanced, text: err.text } : null;
}

export function fromWire(err: WireError | null): SmtpError | null {
  return err ? new SmtpError(err.code, err.enhanced, err.text) : null;
}

export class SmtpWorkers {
  private readonly opts: SmtpWorkersOptions;
  private readonly log: Logger;
  private readonly workers = new Map<number, Worker>();
  private readonly pending: Socket[] = [];
  private readonly servers: Server[] = [];
  private readonly waiters = new Set<() => void>();
  private nextId = 1;
  private restartDelay = 0;
  private closing = false;
  private closed: Promise<void> | undefined;
  /** Worker crashes seen (tests, logs). */
  restarts = 0;

  constructor(opts: SmtpWorkersOptions) {
    this.opts = opts;
    this.log = opts.log.child({ component: 'transfer/smtpd' });
  }

  /** Forks the workers and waits until each has opened the core and the spool. */
  async start(): Promise<void> {
    await Promise.all([...Array(this.opts.workers)].map(() => this.spawn()));
  }

  /** SMTP sessions the workers serve now. */
  sessionCount(): number {
    let n = 0;
    for (const w of this.workers.values()) n += w.sessions;
    return n;
  }

  /** The pids of the ready workers (tests kill one). */
  pids(): number[] {
    return [...this.workers.values()].filter((w) => w.ready && w.child.pid !== undefined).map((w) => w.child.pid!);
  }

  /** Per ready worker (by pid): sessions now and messages queued since it started. */
  byPid(): Map<number, { sessions: number; enqueued: number }> {
    return new Map([...this.workers.values()].filter((w) => w.ready && w.child.pid !== undefined).map((w) => [w.child.pid!, { sessions: w.sessions, enqueued: w.enqueued }]));
  }

  /** Resolves when `n` workers are ready (after a restart). */
  async whenReady(n = this.opts.workers): Promise<void> {
    while (!this.closing && [...this.workers.values()].filter((w) => w.ready).length < n) {
      await new Promise<void>((resolve) => this.waiters.add(resolve));
    }
  }

  /** The port-25 listener, its connections served by the workers. */
  async listen(opts: { port: number; host?: string }): Promise<{ port: number; host: string; close(): Promise<void> }> {
    // Paused: not a byte is read here. The worker's pregreet wait sees a client that talks first, and STARTTLS
    // starts from the first byte the client sent (RFC 3207 §4.2: nothing before the handshake survives it).
    const server = createServer({ pauseOnConnect: true }, (socket) => this.dispatch(socket));
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
    const host = typeof address === 'object' && address ? address.address : (opts.host ?? '');
    this.log.info({ port, workers: this.opts.workers }, 'smtp listening (worker processes)');
    return {
      port,
      host,
      close: async () => {
        await Promise.all([new Promise<void>((resolve) => server.close(() => resolve())), this.close()]);
      },
    };
  }

  close(): Promise<void> {
    this.closed ??= this.shutdown();
    return this.closed;
  }

  private async shutdown(): Promise<void> {
    this.closing = true;
    for (const s of this.pending.splice(0)) s.destroy();
    for (const wake of this.waiters) wake();
    await Promise.all(
      [...this.workers.values()].map(
        (w) =>
          new Promise<void>((resolve) => {
            if (w.child.exitCode !== null || w.child.signalCode !== null) return resolve();
            // The worker closes its listener (sessions in DATA finish their commit) and exits; one that hangs is killed.
            const timer = setTimeout(() => w.child.kill('SIGKILL'), 35_000);
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

  private spawn(): Promise<void> {
    const id = this.nextId++;
    const child = fork(workerEntry(), [], { execArgv: workerExecArgv(), stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const w: Worker = { id, child, ready: false, sessions: 0, startedAt: Date.now(), limited: new Set(), enqueued: 0 };
    this.workers.set(id, w);
    return new Promise<void>((resolve, reject) => {
      child.on('message', (m: FromSmtpWorker) => {
        switch (m.t) {
          case 'hello':
            this.post(w, { t: 'init', config: this.opts.config, logLevel: this.opts.log.level, filtersOff: [...(this.opts.filtersOff ?? [])] });
            break;
          case 'ready':
            w.ready = true;
            this.restartDelay = 0;
            resolve();
            for (const wake of [...this.waiters]) {
              this.waiters.delete(wake);
              wake();
            }
            for (const s of this.pending.splice(0)) if (!s.destroyed) this.dispatch(s);
            break;
          case 'failed':
            reject(new Error(`smtp worker could not start: ${m.error}`));
            break;
          case 'sessions':
            w.sessions = m.n;
            break;
          case 'enqueued':
            w.enqueued++;
            // Committed (fsynced) by the worker: this process's scheduler takes it from here.
            this.opts.spool.emit('enqueued', m.envelope);
            break;
          case 'limit':
            this.limit(w, m);
            break;
          case 'accepted':
            w.limited.delete(m.id);
            this.opts.sendLimits?.accepted(m.id);
            break;
          case 'release':
            w.limited.delete(m.id);
            this.opts.sendLimits?.release(m.id);
            break;
          case 'received':
            this.opts.stats?.countReceived(m.listener);
            break;
          case 'rejected':
            this.opts.stats?.countRejected(m.rejection);
            break;
        }
      });
      child.on('error', (err) => this.log.warn({ err, worker: id }, 'smtp worker: IPC error'));
      child.once('exit', (code, signal) => {
        this.workers.delete(id);
        // Its sessions died with it: what they had reserved of a send limit is given back (nothing was accepted).
        for (const s of w.limited) this.opts.sendLimits?.release(s);
        w.limited.clear();
        if (!w.ready) reject(new Error(`smtp worker exited before it was ready (code ${code}, signal ${signal})`));
        if (this.closing) return;
        this.restarts++;
        const young = Date.now() - w.startedAt < HEALTHY_AFTER_MS;
        this.restartDelay = young ? Math.min(Math.max(this.restartDelay * 2, 250), MAX_RESTART_DELAY_MS) : 0;
        this.log.error({ worker: id, pid: child.pid, code, signal, sessions: w.sessions, restartInMs: this.restartDelay }, 'smtp worker exited; starting another');
        setTimeout(() => {
          if (!this.closing) this.spawn().catch((err: unknown) => this.log.error({ err }, 'smtp worker: restart failed'));
        }, this.restartDelay).unref();
      });
    });
  }

  /** A send-limit check asked by a worker's MAIL FROM or RCPT TO, answered from the one set of counters here. */
  private limit(w: Worker, m: Extract<FromSmtpWorker, { t: 'limit' }>): void {
    let err: SmtpError | null = null;
    const limits = this.opts.sendLimits;
    if (limits) {
      w.limited.add(m.subject.id);
      const subject = { ...m.subject, log: this.log.child({ client: m.subject.ip, session: m.subject.id }) };
      try {
        const r = m.op === 'mail' ? limits.checkMail(subject) : limits.checkRcpt(subject);
        if (r instanceof Promise) {
          // state postgres: the cluster's counters answer asynchronously (a failure is already a 451 4.3.0).
          r.then(
            (e) => this.post(w, { t: 'limit', req: m.req, err: toWire(e) }),
            () => this.post(w, { t: 'limit', req: m.req, err: toWire(new SmtpError(451, '4.3.0', 'Temporary failure, try again later')) }),
          );
          return;
        }
        err = r;
      } catch (e) {
        this.log.error({ err: e }, 'send limit check failed');
        err = new SmtpError(451, '4.3.0', 'Temporary failure, try again later');
      }
    }
    this.post(w, { t: 'limit', req: m.req, err: toWire(err) });
  }

  private post(w: Worker, m: ToSmtpWorker, handle?: Socket, done?: (err: Error | null) => void): boolean {
    if (!w.child.connected) return false;
    try {
      return handle ? w.child.send(m, handle, { keepOpen: false }, done) : w.child.send(m);
    } catch (err) {
      this.log.warn({ err, worker: w.id, message: m.t }, 'smtp worker: cannot send');
      return false;
    }
  }

  private refuse(socket: Socket, why: string): void {
    this.log.warn({ client: socket.remoteAddress, event: 'reject', reason: why }, 'too many connections');
    // RFC 5321 §3.1: a server that cannot serve now says 421 instead of its greeting.
    socket.end(`421 4.7.0 ${this.opts.config.hostname ?? 'postern'} Too many connections, try again later\r\n`);
  }

  /** The ready worker with the fewest sessions gets the connection; with none ready it waits (a restart). */
  private dispatch(socket: Socket, tried = new Set<number>()): void {
    if (tried.size === 0 && this.sessionCount() + (this.opts.localSessions?.() ?? 0) >= this.opts.config.smtp.maxClients) {
      return this.refuse(socket, 'maxClients');
    }
    let best: Worker | undefined;
    for (const w of this.workers.values()) {
      if (!w.ready || tried.has(w.id) || !w.child.connected) continue;
      if (!best || w.sessions < best.sessions) best = w;
    }
    if (!best) {
      if (this.closing || this.pending.length >= MAX_PENDING) return this.refuse(socket, 'no worker');
      this.pending.push(socket);
      return;
    }
    const w = best;
    // Counted at once, so that a burst of connections spreads before the worker's own count comes back.
    w.sessions++;
    tried.add(w.id);
    const sent = this.post(w, { t: 'conn' }, socket, (err) => {
      if (err) {
        w.sessions--;
        if (!socket.destroyed) this.dispatch(socket, tried);
      }
    });
    if (!sent && !socket.destroyed && w.child.connected === false) {
      w.sessions--;
      this.dispatch(socket, tried);
    }
  }
}

/**
 * The send limits of an SMTP worker: asked of the main process, which holds the counters. Only authenticated
 * sessions are limited (SendLimits.checkMail returns at once without a login, and without the transaction it opens
 * checkRcpt, accepted and release do nothing), so only their calls cross the IPC channel: a port-25 message from
 * another MTA costs no round trip on MAIL or RCPT and no notice at DATA or close (issue 11: the main process's event
 * loop, which also delivers, read 5–7 IPC messages per message it did not need). Checks and releases go out in
 * order on the one channel, so the main process sees them as the session made them.
 */
export class RemoteSendLimits implements SendLimitsPort {
  private readonly waiting = new Map<number, (err: SmtpError | null) => void>();
  private next = 0;
  /** Sessions that asked the main process for a MAIL with a login: it may hold a transaction for them. */
  private readonly open = new Set<string>();
  /** IPC messages sent (tests). */
  sent = 0;

  constructor(private readonly send: (m: FromSmtpWorker) => boolean) {}

  checkMail(s: LimitSubject): Promise<SmtpError | null> | null {
    if (!s.login) {
      // A new transaction without a login (STARTTLS forgot the user): an earlier one's reservation still goes.
      this.release(s.id);
      return null;
    }
    this.open.add(s.id);
    return this.ask('mail', s);
  }

  checkRcpt(s: LimitSubject): Promise<SmtpError | null> | null {
    if (!s.login || !this.open.has(s.id)) return null;
    return this.ask('rcpt', s);
  }

  accepted(id: string): void {
    if (this.open.delete(id)) this.post({ t: 'accepted', id });
  }

  release(id: string): void {
    if (this.open.delete(id)) this.post({ t: 'release', id });
  }

  private post(m: FromSmtpWorker): boolean {
    this.sent++;
    return this.send(m);
  }

  /** The main process's answer to request `req`. */
  answer(req: number, err: WireError | null): void {
    this.waiting.get(req)?.(fromWire(err));
    this.waiting.delete(req);
  }

  /** The main process is gone: nobody can say whether the limit allows it, so it is a temporary no. */
  failAll(): void {
    for (const resolve of this.waiting.values()) resolve(new SmtpError(451, '4.3.0', 'Temporary failure, try again later'));
    this.waiting.clear();
  }

  private ask(op: 'mail' | 'rcpt', s: LimitSubject): Promise<SmtpError | null> {
    const req = ++this.next;
    return new Promise((resolve) => {
      this.waiting.set(req, resolve);
      if (!this.post({ t: 'limit', req, op, subject: { id: s.id, login: s.login, ip: s.ip } })) {
        this.waiting.delete(req);
        resolve(new SmtpError(451, '4.3.0', 'Temporary failure, try again later'));
      }
    });
  }
}

/** worker-main next to this file, .ts under tsx (tests, `postern serve` from the sources) or .js when built. */
function workerEntry(): string {
  return fileURLToPath(new URL(import.meta.url.endsWith('.ts') ? './worker-main.ts' : './worker-main.js', import.meta.url));
}

/**
 * The worker runs the same sources: under tsx (bin/postern.js registers it through its API, so process.execArgv
 * does not name it) it needs `--import tsx`. The test runner's own flags (and a --cpu-prof's file name) are not
 * passed on.
 */
function workerExecArgv(): string[] {
  const args = process.execArgv.filter((a) => !a.startsWith('--test') && !a.startsWith('--cpu-prof-name'));
  if (import.meta.url.endsWith('.ts') && !args.some((a) => a.includes('tsx'))) args.push('--import', import.meta.resolve('tsx'));
  return args;
}
