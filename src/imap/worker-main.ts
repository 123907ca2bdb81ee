/**
 * An IMAP worker process (imap.workers, see workers.ts): it opens the core and the Maildir store as the primary
 * does, serves the connections the primary hands it, and bridges the store's change hubs through the primary.
 * It lives as long as its IPC channel: when the primary goes away, so does the worker.
 */
import { join } from 'node:path';
import type { Socket } from 'node:net';
import { openCore, type Core } from '../core.js';
import { createServerLogger } from '../lib/logger.js';
import { SessionRegistry } from '../lib/session-registry.js';
import { loadTls } from '../lib/tls.js';
import { MaildirMailbox, quotaFromSettings } from '../store/maildir-mailbox.js';
import { MaildirPgIndex } from '../state/postgres/maildir-pg-index.js';
import { indexCacheDir } from '../state/index.js';
import { MaildirStore } from '../store/maildir.js';
import { UrlauthKeyStore } from '../store/urlauth-keys.js';
import { serverHostname } from '../server.js';
import { startImap, type ImapServer } from './server.js';
import { imapDeps } from './wiring.js';
import { ChangeHistory, HUBS, homeSlot, type BridgedChange, type FromWorker, type HubName, type ToWorker } from './workers.js';

const send = (m: FromWorker): void => {
  if (process.connected) process.send!(m);
};

let servers: Partial<Record<'imap' | 'imaps', ImapServer>> = {};
let core: Core | undefined;
let mailbox: MaildirMailbox | undefined;
let sessions = 0;
let reportQueued = false;
let outbox: BridgedChange[] = [];
let closing = false;
/** This worker's logged-in sessions by user, for the primary's closeUser. */
const userSessions = new SessionRegistry();
const settling = new Map<number, () => void>();
let settleId = 0;

/** MailboxAccess.settle: a round trip through the primary, which sends what it has for us before answering. */
function settle(): Promise<void> {
  if (!process.connected) return Promise.resolve();
  const id = ++settleId;
  return new Promise<void>((resolve) => {
    settling.set(id, resolve);
    send({ t: 'settle', id });
  });
}

/**
 * A connection handed to this worker (new, or moved here after its LOGIN): counted until it closes, or dropped when
 * this worker has no such listener or is shutting down. True when the server should take it.
 */
function take(socket: Socket, server: ImapServer | undefined): server is ImapServer {
  if (!server || closing) {
    socket.destroy();
    return false;
  }
  sessions++;
  report();
  socket.once('close', () => {
    sessions--;
    report();
  });
  return true;
}

/** The session count goes to the primary (which balances by it), at most once per event-loop turn. */
function report(): void {
  if (reportQueued) return;
  reportQueued = true;
  setImmediate(() => {
    reportQueued = false;
    send({ t: 'sessions', n: sessions });
  });
}

/** Keys (interest keys: hub NUL key) some other process listens to (the primary's `want`): their changes are sent. */
const wanted = new Set<string>();
/** Everything is sent (the primary carries changes to the other nodes of a cluster). */
let wantAll = false;
/** The changes not sent, for a replay to a new watcher elsewhere (workers.ts). */
const kept = new ChangeHistory();

function flushOutbox(): void {
  if (outbox.length === 0) return;
  const batch = outbox;
  outbox = [];
  send({ t: 'ev', batch });
}

function bridge(wantEverything: boolean): void {
  wantAll = wantEverything;
  for (const [name, hub] of Object.entries(HUBS) as [HubName, (typeof HUBS)[HubName]][]) {
    hub.addBridge((key, change) => {
      // Nobody elsewhere listens to it: kept a while (a watcher that begins now gets it replayed), not sent.
      if (!wantAll && !wanted.has(`${name}\0${key}`)) {
        kept.push(0, [name, key, change]);
        return;
      }
      // Sent before this turn's I/O: a session's tagged OK, written after its change, never overtakes the change.
      if (outbox.length === 0) process.nextTick(flushOutbox);
      outbox.push([name, key, change]);
    });
    // The primary learns which keys this process listens to; first and last listener only.
    hub.onInterest((key, on) => send({ t: 'watch', hub: name, key, on }));
    for (const key of hub.watchedKeys()) send({ t: 'watch', hub: name, key, on: true });
  }
}

async function init(m: Extract<ToWorker, { t: 'init' }>): Promise<void> {
  const { config } = m;
  const log = createServerLogger({
    level: m.logLevel,
    format: config.log.format,
    file: config.log.file,
    imapFile: config.log.imapFile,
    host: config.hostname,
  }).log.child({ worker: process.pid });
  const hostname = serverHostname(config);
  core = openCore(config, log);
  // The primary made the self-signed pair (if any) before forking: this reads the same files.
  const tls = await loadTls({ cert: config.tls.cert, key: config.tls.key, dataDir: config.dataDir, hostname });
  // Mailboxes belong to AD objects (issue 13): the same registry as the primary's tells where each one is.
  const store = new MaildirStore({ root: join(config.dataDir, 'mail'), hostname, log, locate: (owner) => core!.registry.locate(owner) });
  // state postgres: the shared index as the primary uses it, and the same node-local copies (server.ts).
  const pgIndex = core.state.pg ? new MaildirPgIndex({ db: core.state.pg, mailRoot: store.root, cacheDir: indexCacheDir(config) }) : undefined;
  mailbox = new MaildirMailbox({ store, quotaBytes: quotaFromSettings(core.settings), log, ...(pgIndex ? { pgIndex } : {}) });
  Object.assign(mailbox, { settle });
  const urlauthKeys = new UrlauthKeyStore({ root: (owner) => store.maildirPath(owner) });
  const deps = imapDeps({ config, core, tls, mailbox, urlauthKeys, hostname, log, sessions: userSessions });
  bridge(m.wantAll);
  const { slot, slots } = m;
  // Logins move to the mailbox's home worker (workers.ts); only plain connections can (ImapSession.handOff).
  const handoff = {
    home: (user: Parameters<typeof homeSlot>[0]) => slots < 2 || homeSlot(user, slots) === slot,
    send(socket: Socket, state: Parameters<NonNullable<(typeof deps)['handoff']>['send']>[1]) {
      const to = homeSlot(state.user, slots);
      // Destroyed only once the message went: a handle sent while an earlier one awaits its ACK is queued with the
      // socket untouched, and destroying it then would close the connection. Once sent, socket._handle is null:
      // destroying the object closes nothing, it only emits 'close', so this process's counts let the session go.
      const done = (err: Error | null) => {
        if (err) log.warn({ err }, 'imap worker: could not hand a session over');
        socket.destroy();
      };
      try {
        process.send!({ t: 'handoff', slot: to, state } satisfies FromWorker, socket, { keepOpen: false }, done);
      } catch (err) {
        done(err as Error);
      }
    },
  };
  for (const role of ['imap', 'imaps'] as const) {
    if (config.listeners[role] === false) continue;
    servers[role] = await startImap({ ...deps, port: 0, listen: false, secure: role === 'imaps', ...(role === 'imap' ? { handoff } : {}) });
  }
  log.debug({ roles: Object.keys(servers) }, 'imap worker ready');
  send({ t: 'ready' });
}

async function shutdown(code: number): Promise<never> {
  if (!closing) {
    closing = true;
    await Promise.all(Object.values(servers).map((s) => s.close().catch(() => undefined)));
    servers = {};
    mailbox?.close();
    await core?.close().catch(() => undefined);
  }
  process.exit(code);
}

process.on('message', (m: ToWorker, handle?: unknown) => {
  switch (m.t) {
    case 'init':
      init(m).catch((err: unknown) => {
        send({ t: 'failed', error: (err as Error).message });
        void shutdown(1);
      });
      break;
    case 'conn': {
      const socket = handle as Socket | undefined;
      const server = servers[m.role];
      if (socket && take(socket, server)) server.accept(socket);
      break;
    }
    case 'adopt': {
      const socket = handle as Socket | undefined;
      const server = servers.imap;
      if (socket && take(socket, server)) server.adopt(socket, m.state);
      break;
    }
    case 'ev':
      for (const [name, key, change] of m.batch) HUBS[name].emitLocal(key, change as never);
      break;
    case 'want':
      if (m.on) wanted.add(`${m.hub}\0${m.key}`);
      else wanted.delete(`${m.hub}\0${m.key}`);
      break;
    case 'replay': {
      // What was sent already goes first (the primary passed it on, or has it in its own history).
      flushOutbox();
      const batch = kept.of(m.hub, m.key, -1);
      if (batch.length) send({ t: 'ev', batch, to: m.for });
      send({ t: 'replayed', for: m.for });
      break;
    }
    case 'delivered':
      mailbox?.notifyDelivered(m.owner, m.folder);
      break;
    case 'settled':
      settling.get(m.id)?.();
      settling.delete(m.id);
      break;
    case 'closeUser':
      userSessions.closeUser(m.login, m.reason);
      break;
    case 'close':
      void shutdown(0);
      break;
  }
});
send({ t: 'hello' });
// The primary is gone (crashed or killed): nobody hands us connections or relays our changes any more.
process.on('disconnect', () => void shutdown(0));
