/**
 * An SMTP worker process (smtp.workers, see workers.ts): it opens the core (settings, directory, resolver, auth),
 * the spool and the trace as the main process does, and serves the port-25 connections the main process hands it
 * with the same hooks. Its 250 waits for its own spool commit; the main process delivers. It lives as long as its
 * IPC channel: when the main process goes away, so does the worker.
 */
import type { Socket } from 'node:net';
import { openCore, type Core } from '../core.js';
import { createServerLogger } from '../lib/logger.js';
import { loadTls } from '../lib/tls.js';
import { newQueueId } from '../queue/id.js';
import { openSpool } from '../state/index.js';
import { serverHostname } from '../server.js';
import { openTrace, type TraceBackend } from '../trace/index.js';
import { startSmtp, type SmtpListener, type SmtpService } from './server.js';
import { dataOptions, makeFilters, makeSrs, spoolPrefixFor } from './wiring.js';
import { RemoteSendLimits, type FromSmtpWorker, type ToSmtpWorker } from './workers.js';

/** Sends to the main process; false when the channel is gone (the message is then not on its way). */
const send = (m: FromSmtpWorker): boolean => {
  if (!process.connected) return false;
  process.send!(m);
  return true;
};

let core: Core | undefined;
let trace: TraceBackend | undefined;
let smtp: SmtpService | undefined;
let listener: SmtpListener | undefined;
let reportQueued = false;
let closing = false;
const limits = new RemoteSendLimits(send);

/**
 * The session count goes to the main process (which balances by it and applies smtp.maxClients), at most once per
 * event-loop turn. smtp-server's own set of live connections is the count: a session that did STARTTLS lives on in
 * a TLS socket, and the socket handed over never says it closed.
 */
function report(): void {
  if (reportQueued) return;
  reportQueued = true;
  setImmediate(() => {
    reportQueued = false;
    send({ t: 'sessions', n: listener?.server.connections.size ?? 0 });
  });
}

async function init(m: Extract<ToSmtpWorker, { t: 'init' }>): Promise<void> {
  const { config } = m;
  const log = createServerLogger({ level: m.logLevel, format: config.log.format, file: config.log.file, host: config.hostname }).log.child({ worker: process.pid });
  const hostname = serverHostname(config);
  core = openCore(config, log);
  // The main process made the self-signed pair (if any) and the SRS secret before forking: these read its files.
  const tls = await loadTls({ cert: config.tls.cert, key: config.tls.key, dataDir: config.dataDir, hostname });
  // state postgres: the cluster's trace, on this process's own pool (core.state, not started: the main process migrated).
  trace = openTrace(config, core.state.pg, { log, writer: 'worker' });
  // No server lock and no recover(): those are the main process's, which runs the queue. This process only
  // commits new messages (unique names, atomic renames: see spool.ts), and keeps none in memory for delivery.
  // state postgres: the row in PostgreSQL is the commit point, as in the main process (src/state/postgres/queue.ts).
  const spool = openSpool(config.dataDir, config.queue, core.state, { log, prefixFor: spoolPrefixFor, trace, keepFresh: false });
  await spool.init();
  spool.on('enqueued', (envelope) => send({ t: 'enqueued', envelope }));
  const { settings } = core;
  smtp = await startSmtp({
    deps: {
      hostname,
      settings,
      resolver: core.resolver,
      directory: core.directory,
      auth: core.auth,
      log,
      limits: { maxRecipients: config.smtp.maxRecipients, errorLimit: config.smtp.errorLimit },
      enqueue: (message, envelope) => spool.enqueue(message, envelope),
      newQueueId: () => newQueueId(),
      filters: makeFilters(config, settings, new Set(m.filtersOff), hostname, log, trace),
      stats: {
        countReceived: (l) => void send({ t: 'received', listener: l }),
        countRejected: (rejection) => void send({ t: 'rejected', rejection }),
      },
      srs: makeSrs(config, hostname),
      sendLimits: limits,
      trace,
    },
    tls,
    listeners: { ...config.listeners, submission: false, smtps: false },
    limits: config.smtp,
    data: dataOptions(config, settings, log, core.state.pg),
    listen: false,
    onSessionEnd: report,
  });
  listener = smtp.listeners.find((l) => l.role === 'smtp');
  if (!listener) throw new Error('the smtp listener is off: no SMTP worker is needed');
  log.debug('smtp worker ready');
  send({ t: 'ready' });
}

async function shutdown(code: number): Promise<never> {
  if (!closing) {
    closing = true;
    limits.failAll();
    // smtp-server's close waits for the sessions to end (a DATA under way commits and answers first).
    await smtp?.close().catch(() => undefined);
    await trace?.close();
    await core?.close().catch(() => undefined);
  }
  process.exit(code);
}

process.on('message', (m: ToSmtpWorker, handle?: unknown) => {
  switch (m.t) {
    case 'init':
      init(m).catch((err: unknown) => {
        send({ t: 'failed', error: (err as Error).message });
        void shutdown(1);
      });
      break;
    case 'conn': {
      const socket = handle as Socket | undefined;
      if (!socket) break;
      if (!listener || closing) {
        socket.destroy();
        break;
      }
      // A socket that closes before smtp-server takes it on (no session, no onClose) is counted out here.
      socket.once('close', report);
      listener.accept(socket);
      report();
      break;
    }
    case 'limit':
      limits.answer(m.req, m.err);
      break;
    case 'close':
      void shutdown(0);
      break;
  }
});
send({ t: 'hello' });
// The main process is gone: nobody hands us connections, answers our limit checks or delivers what we queue.
process.on('disconnect', () => void shutdown(0));
