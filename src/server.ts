/**
 * `postern serve`: the whole server from one configuration — the core (settings, directory, resolver, auth), the
 * Maildir store, the queue with its scheduler and delivery agent, and the SMTP listeners.
 */
import { hostname as osHostname, networkInterfaces } from 'node:os';
import { join } from 'node:path';
import type { LoadedConfig } from './config/load.js';
import { openCore, type Core } from './core.js';
import { LocalRemoteAgent } from './delivery/agent.js';
import { makeSieveDelivery } from './sieve/wiring.js';
import { SieveState } from './sieve/state.js';
import { RemoteDelivery } from './delivery/remote.js';
import { ClamdScanner } from './filters/clamav.js';
import { Spamc } from './filters/spamc.js';
import type { Logger } from './lib/logger.js';
import { loadTls, type TlsMaterial } from './lib/tls.js';
import { newQueueId } from './queue/id.js';
import { Scheduler } from './queue/scheduler.js';
import type { Spool } from './queue/spool.js';
import { indexCacheDir, openSpool } from './state/index.js';
import { startSmtp, type SmtpService } from './smtp/server.js';
import { dataOptions, makeFilters, makeSrs, spoolPrefixFor } from './smtp/wiring.js';
import { SmtpWorkers } from './smtp/workers.js';
import { SmtpStats } from './smtp/stats.js';
import { MaildirStore } from './store/maildir.js';
import { userOwner } from './store/types.js';
import { MaildirMailbox, quotaFromSettings } from './store/maildir-mailbox.js';
import { MaildirPgIndex } from './state/postgres/maildir-pg-index.js';
import { JunkRetention } from './store/retention.js';
import { migrateLoginMailboxes } from './lifecycle/lifecycle.js';
import { startPop3, type Pop3Service } from './pop3/server.js';
import { startManageSieve, type ManageSieveService } from './managesieve/server.js';
import { interpreterChecker } from './managesieve/sieve-checker.js';
import { SieveScriptStore } from './sieve/storage.js';
import { startImap } from './imap/server.js';
import { imapDeps } from './imap/wiring.js';
import { SpamLearner } from './filters/spamassassin.js';
import { openTrainingQueue, SpamTrainer } from './filters/training-queue.js';
import { ImapWorkers, type BridgedChange } from './imap/workers.js';
import { startClusterMail } from './state/postgres/cluster-mail.js';
import { UrlauthKeyStore } from './store/urlauth-keys.js';
import { resolveBurl } from './imap/urlauth.js';
import type { UserEntry } from './directory/types.js';
import { startAdmin, type AdminService } from './admin/server.js';
import { SendLimits } from './limits/send-limits.js';
import { SqliteCounterStore } from './limits/store.js';
import { PgSendCounters } from './limits/pg-counters.js';
import { LdapDirectory } from './directory/ldap/ldap-directory.js';
import { DirectoryWatch, endsSessions, WATCH_STATE_FILE } from './directory/watch.js';
import { folderEvents } from './store/watch.js';
import { SessionRegistry } from './lib/session-registry.js';
import { openTrace, TraceRetention, type TraceBackend } from './trace/index.js';

export interface Server {
  core: Core;
  hostname: string;
  tls: TlsMaterial;
  store: MaildirStore;
  mailbox: MaildirMailbox;
  /** Expunges Junk messages older than the hold period (mailbox.spamRetentionDays): at start, then hourly. */
  retention: JunkRetention;
  spool: Spool;
  scheduler: Scheduler;
  /** Message trace (src/trace): every message's path, in `${dataDir}/trace.db`. */
  trace: TraceBackend;
  smtp: SmtpService;
  /** The admin API (TLS) and autoconfig (plain HTTP) listeners. */
  admin: AdminService;
  /** Per-user and per-address send limits (counters in dataDir/limits.db). */
  sendLimits: SendLimits;
  /** The SMTP worker processes (smtp.workers > 0) serving the port-25 listener, undefined when SMTP is served here. */
  smtpWorkers?: SmtpWorkers;
  /** The IMAP worker processes (imap.workers > 0), undefined when IMAP is served in this process. */
  imapWorkers?: ImapWorkers;
  /** Bound ports by listener name (useful with port 0). */
  ports: Record<string, number>;
  /** Open IMAP/POP3 sessions by user. */
  sessions: SessionRegistry;
  /** Follows AD changes (directory.type ldap with directory.watch.enabled); its onChange is for other parts too. */
  watch?: DirectoryWatch;
  close(): Promise<void>;
}

export function serverHostname(config: LoadedConfig): string {
  return config.hostname ?? osHostname();
}

export interface StartOptions {
  /**
   * The embedded defaults (`npm start` with no config): a filter whose daemon is not there (no clamd or spamd on a
   * fresh machine) is turned off for this run, with a notice, instead of answering every message 451. A real
   * configuration keeps the seed's behaviour: a missing daemon is a temporary failure, never a silent pass.
   */
  embedded?: boolean;
}

/** The filter switches that are off for this run, and why (embedded defaults only). */
async function unavailableFilters(config: LoadedConfig): Promise<Map<string, string>> {
  const off = new Map<string, string>();
  try {
    await new ClamdScanner({ ...config.clamav, timeoutMs: 2000 }).scan(Buffer.from('probe\r\n'));
  } catch (err) {
    off.set('filter.antivirus', `clamd not reachable (${(err as Error).message})`);
  }
  try {
    await new Spamc({ host: config.spamassassin.host, port: config.spamassassin.port, timeoutMs: 2000 }).ping();
  } catch (err) {
    off.set('filter.spam', `spamd not reachable at ${config.spamassassin.host}:${config.spamassassin.port} (${(err as Error).message})`);
  }
  return off;
}

export async function startServer(config: LoadedConfig, log: Logger, opts: StartOptions = {}): Promise<Server & { filtersOff: Map<string, string> }> {
  const hostname = serverHostname(config);
  let core: Core | undefined;
  let scheduler: Scheduler | undefined;
  let sendLimits: SendLimits | undefined;
  let trace: TraceBackend | undefined;
  let traceRetention: TraceRetention | undefined;
  let smtpWorkersListener: { port: number; close(): Promise<void> } | undefined;
  /** Listeners already bound, closed again when a later one fails (an open listener would keep the process alive). */
  const opened: { close(): Promise<void> }[] = [];
  try {
    core = openCore(config, log);
    const { settings } = core;
    // state postgres (issue 16): migrate, load the shared settings into settings.db and follow them; a PostgreSQL
    // that cannot be reached stops the start (TempFailure) rather than serving without knowing the domains.
    await core.state.start(settings);
    // The mailbox registry's copy follows the cluster's (issue 16) before anything looks a mailbox up.
    await core.sharedRegistry?.start();
    trace = openTrace(config, core.state.pg, { log, writer: 'worker' });
    const tls = await loadTls({ cert: config.tls.cert, key: config.tls.key, dataDir: config.dataDir, hostname });
    const store = new MaildirStore({ root: join(config.dataDir, 'mail'), hostname, log, locate: (owner) => core!.registry.locate(owner) });
    // Issue 13: mailboxes still keyed by login become their AD object's (in place, once), before anything delivers.
    await migrateLoginMailboxes({ registry: core.registry, directory: core.directory, log }, store.root);
    // state postgres: the queue's metadata in PostgreSQL, shared with the other nodes (issue 16).
    const spool = openSpool(config.dataDir, config.queue, core.state, { log, prefixFor: spoolPrefixFor, trace });
    await spool.init();
    const remote = new RemoteDelivery({ settings, hostname, config: { delivery: config.delivery, dns: config.dns }, log, trace });
    // One mailbox object for POP3 (and IMAP): they share its change hub and the POP3 maildrop locks.
    // state postgres (issue 16): UIDs, flags, MODSEQs from the shared index; each node's copy in its own dataDir.
    const pgIndex = core.state.pg ? new MaildirPgIndex({ db: core.state.pg, mailRoot: store.root, cacheDir: indexCacheDir(config) }) : undefined;
    const mailbox = new MaildirMailbox({ store, quotaBytes: quotaFromSettings(settings), log, ...(pgIndex ? { pgIndex } : {}) });
    // RFC 4467 URLAUTH keys in each user's Maildir root (store/urlauth-keys.ts), for IMAP and for BURL (RFC 4468).
    const urlauthKeys = new UrlauthKeyStore({ root: (owner) => store.maildirPath(owner) });
    const { auth, directory: dir, lifecycle } = core;
    // AD changes reach the cache within a poll interval, and a user whose access was taken away loses every open
    // IMAP/POP3 session at once (issue 13 item 3).
    const sessions = new SessionRegistry();
    const imapWorkersRef: { current?: ImapWorkers } = {};
    // ---- cluster mail (issue 16, state postgres): folder changes to and from the other nodes, shared POP3 locks (begin) ----
    const clusterMail =
      config.state.type === 'postgres' && core.state.pg
        ? await startClusterMail({
            db: core.state.pg,
            url: config.state.url,
            node: core.state.nodeId,
            mailRoot: store.root,
            log,
            onDelivered: (owner, folder) => {
              mailbox.notifyDelivered(owner, folder);
              imapWorkersRef.current?.delivered(owner, folder);
            },
            onRemote: (batch) => imapWorkersRef.current?.relay(batch),
          })
        : undefined;
    if (clusterMail) opened.push(clusterMail);
    // Reads of a folder no other node or process changed since its copy was pulled skip the round trip
    // (maildir-pg-index.ts trustChanges): the other nodes' changes arrive on the LISTEN connection, the workers' through
    // the hub. The hub is the mailbox's own (folderEvents), which PgMailEvents feeds.
    if (clusterMail && pgIndex) {
      const untrust = pgIndex.trustChanges({ generation: () => clusterMail.events.generation(), hub: folderEvents, hearsAll: config.imap.workers === 0 });
      opened.push({ close: async () => untrust() });
    }
    // ---- cluster mail (end) ----
    let watch: DirectoryWatch | undefined;
    let recheck: NodeJS.Timeout | undefined;
    if (dir.backend instanceof LdapDirectory && config.directory.watch.enabled) {
      const w = new DirectoryWatch(dir.backend, dir, config.directory.watch, log, join(config.dataDir, WATCH_STATE_FILE));
      watch = w;
      w.onChange((change) => {
        // An account deleted, restored, or moved out of or into the base: its mailbox is orphaned or given back at
        // once (issue 13), instead of at the next hourly reconcile. A deletion the sweep found has no objectGUID of
        // its own; the cached entry it dropped (previous) has it.
        const guid = change.kind === 'user' ? (change.objectGUID ?? change.user?.guid ?? change.previous?.guid) : undefined;
        if (guid) void lifecycle.reconcile(guid);
        const end = endsSessions(change);
        if (!end) return;
        const closed = sessions.closeUser(end.login, end.reason);
        // Sessions served by IMAP worker processes (imap.workers) are closed there.
        imapWorkersRef.current?.closeUser(end.login, end.reason);
        if (closed.imap + closed.pop3 + closed.managesieve > 0) log.info({ component: 'directory', user: end.login, reason: end.reason, ...closed }, 'directory watch: sessions closed');
      });
      opened.push({ close: () => w.stop() });
      // A safety net for what no AD write announces (accountExpires simply passing, a lockout seen only by another
      // DC): every minute the users with open sessions are looked up (through the cache) and checked again.
      recheck = setInterval(() => {
        for (const login of sessions.logins()) {
          dir
            .findLogin(login)
            .then((u) => {
              const end = u ? endsSessions({ dn: u.dn, kind: 'user', deleted: false, user: u, dc: '', usn: 0, seenAt: Date.now() }) : null;
              if (end) sessions.closeUser(login, end.reason);
            })
            .catch(() => undefined);
        }
      }, 60_000);
      recheck.unref();
      opened.push({ close: async () => clearInterval(recheck) });
      w.start().catch((err: unknown) => log.error({ component: 'directory', err }, 'directory watch failed to start'));
    }
    const ourHosts = new Set([hostname.toLowerCase(), 'localhost', ...Object.values(networkInterfaces()).flatMap((a) => (a ?? []).map((i) => i.address.toLowerCase()))]);
    const fetchBurl = (url: string, user: UserEntry) =>
      resolveBurl(
        {
          mailbox,
          keys: urlauthKeys,
          findUser: (login) => core!.mailboxAuth.findUser(login),
          resolveOwner: (u) => userOwner(u),
          sharedGroups:
            config.directory.groupDelivery === 'shared'
              ? async (u: UserEntry) => (await dir.groupsOf(u)).filter((g) => g.mailEnabled).map((g) => g.name)
              : undefined,
          hosts: (host) => ourHosts.has(host.toLowerCase()),
        },
        url,
        user,
      );
    const srs = makeSrs(config, hostname);
    // Sieve at delivery (issue 15): out-of-office, before script, users' scripts; replies go through the spool.
    const sieveState = SieveState.open(config.dataDir);
    opened.push({ close: async () => sieveState.close() });
    const sieve = makeSieveDelivery({ config, state: sieveState, store, directory: core.directory, hostname, log });
    const agent = new LocalRemoteAgent({
      resolver: core.resolver,
      settings,
      store,
      remote,
      hostname,
      hopLimit: config.delivery.hopLimit,
      log,
      onDelivered: (owner, folder) => {
        mailbox.notifyDelivered(owner, folder);
        // IDLE sessions in IMAP workers (imap.workers) hear of deliveries made here.
        imapWorkersRef.current?.delivered(owner, folder);
        // And those of the other nodes of a cluster.
        clusterMail?.delivered(owner, folder);
      },
      srs,
      trace,
      sieve,
      enqueue: (message, envelope) => spool.enqueue(message, envelope),
      keywordLetters: (owner, folder, keywords) => mailbox.keywordLetters(owner, folder, keywords),
    });
    scheduler = new Scheduler({ spool, settings, config: config.queue, hostname, log, agent, trace });
    await scheduler.start();
    const filtersOff = opts.embedded ? await unavailableFilters(config) : new Map<string, string>();
    const filters = makeFilters(config, settings, new Set(filtersOff.keys()), hostname, log, trace);
    const smtpStats = new SmtpStats();
    // state postgres: the counters are the cluster's, so a limit holds across nodes (src/limits/pg-counters.ts).
    const statePg = core.state.pg;
    sendLimits = new SendLimits({
      settings,
      log,
      ...(statePg ? { shared: new PgSendCounters(statePg), nodeId: core.state.nodeId } : { store: SqliteCounterStore.open(config.dataDir) }),
    });
    // smtp.workers > 0: the port-25 listener is here, its sessions are served by worker processes that write the
    // spool themselves (src/smtp/workers.ts); submission and smtps stay in this process.
    const smtpRef: { current?: SmtpService } = {};
    const smtpWorkers =
      config.smtp.workers > 0 && config.listeners.smtp !== false
        ? new SmtpWorkers({ config, workers: config.smtp.workers, log, spool, sendLimits, stats: smtpStats, localSessions: () => smtpRef.current?.sessions.size ?? 0, filtersOff: new Set(filtersOff.keys()) })
        : undefined;
    if (smtpWorkers) {
      opened.push(smtpWorkers);
      await smtpWorkers.start();
    }
    const smtp = await startSmtp({
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
        filters,
        stats: smtpStats,
        srs,
        sendLimits,
        trace,
      },
      tls,
      listeners: smtpWorkers ? { ...config.listeners, smtp: false } : config.listeners,
      limits: config.smtp,
      // RFC 4468 BURL: the URLAUTH URL is resolved in our own store, as "submit+<user>" (imap/urlauth.ts).
      burl: (url, user) => fetchBurl(url, user),
      data: dataOptions(config, settings, log, core.state.pg),
      otherSessions: () => smtpWorkers?.sessionCount() ?? 0,
    });
    smtpRef.current = smtp;
    opened.push(smtp);
    if (smtpWorkers && config.listeners.smtp !== false) {
      const l = await smtpWorkers.listen({ port: config.listeners.smtp.port, host: config.listeners.smtp.host });
      opened.push(l);
      smtpWorkersListener = l;
    }
    const pop3: Pop3Service[] = [];
    const ports: Record<string, number> = Object.fromEntries(smtp.listeners.map((l) => [l.role, l.port]));
    if (smtpWorkersListener) ports.smtp = smtpWorkersListener.port;
    // The Bayes training queue (issue 16): lessons of moves into/out of Junk, told to spamd by this node's trainer;
    // with state postgres the queue is the cluster's and the nodes' trainers share it (each lesson told once).
    const trainingQueue = openTrainingQueue(config, core.state.pg);
    const learner = new SpamLearner({ config: config.spamassassin, settings, log });
    const trainer = new SpamTrainer({ queue: trainingQueue, node: core.state.nodeId, log, intervalMs: 1000, tell: (l) => learner.learn(l.message, l.kind, { by: l.login }) });
    trainer.start();
    opened.push({ close: async () => { await trainer.stop(); await trainingQueue.close(); } });
    const imapOptions = imapDeps({ config, core, tls, mailbox, urlauthKeys, hostname, log, sessions, training: { queue: trainingQueue, queued: () => trainer.kick() } });
    const imap: { close(): Promise<void>; sessionCount(): number }[] = [];
    // imap.workers > 0: this process keeps the IMAP listeners and hands each connection to a worker process that
    // serves it over the same store (src/imap/workers.ts); 0: sessions are served here.
    const imapWorkers =
      config.imap.workers > 0
        ? new ImapWorkers({ config, workers: config.imap.workers, log, ...(clusterMail ? { onWorkerChanges: (b: BridgedChange[]) => clusterMail.publish(b) } : {}) })
        : undefined;
    imapWorkersRef.current = imapWorkers;
    if (imapWorkers) {
      opened.push(imapWorkers);
      await imapWorkers.start();
    }
    for (const role of ['imap', 'imaps'] as const) {
      const l = config.listeners[role];
      if (l === false) continue;
      const svc = imapWorkers
        ? await imapWorkers.listen({ port: l.port, host: l.host, secure: role === 'imaps' })
        : await startImap({ port: l.port, host: l.host, secure: role === 'imaps', ...imapOptions });
      imap.push(svc);
      opened.push(svc);
      ports[role] = svc.port;
    }
    for (const role of ['pop3', 'pop3s'] as const) {
      const l = config.listeners[role];
      if (l === false) continue;
      const svc = await startPop3({ port: l.port, host: l.host, secure: role === 'pop3s', tls, auth: core.mailboxAuth, mailbox, settings, hostname, log, sessions, ...(clusterMail ? { locks: clusterMail.locks } : {}) });
      pop3.push(svc);
      opened.push(svc);
      ports[role] = svc.port;
    }
    // ManageSieve (issue 15): users' Sieve scripts in their mailbox home, in Pigeonhole's layout (sieve/storage.ts).
    const managesieve: ManageSieveService[] = [];
    if (config.listeners.managesieve !== false) {
      const l = config.listeners.managesieve;
      const svc = await startManageSieve({
        port: l.port,
        host: l.host,
        tls,
        auth: core.mailboxAuth,
        settings,
        scripts: new SieveScriptStore({ quota: config.managesieve }),
        home: (user) => store.homePath(userOwner(user)),
        sieve: interpreterChecker({ maxScriptBytes: config.managesieve.maxScriptBytes }),
        hostname,
        log,
        sessions,
      });
      managesieve.push(svc);
      opened.push(svc);
      ports.managesieve = svc.port;
    }
    // The seed's "Hold for": Junk older than mailbox.spamRetentionDays (per-user override) is expunged.
    // state postgres: one node per interval sweeps the shared Maildir (core.state.gate, cluster/run-once.ts).
    const retention = new JunkRetention({ store, mailbox, settings, log, ...(core.state.gate ? { gate: core.state.gate } : {}), userOwner: (dir) => {
      const rec = core!.registry.byDirName(dir);
      return rec ? { kind: 'user', login: rec.login, guid: rec.guid } : undefined;
    } });
    retention.start();
    // trace.retentionDays (default 30): message paths older than that are deleted, at start and then hourly.
    // With state postgres the trace is the cluster's: one node per interval sweeps it.
    const gate = core.state.gate;
    traceRetention = new TraceRetention({
      store: trace,
      settings,
      log,
      ...(gate ? { gate: { name: 'trace-retention', claim: (n: string, ms: number) => gate.claim(n, ms), done: (n: string) => gate.done(n) } } : {}),
    });
    traceRetention.start();
    // Orphaned mailboxes (accounts gone from AD): found at start and hourly, erased after the retention.
    core.lifecycle.start();
    // Last: the admin API and autoconfig describe the listeners above (their bound ports).
    let admin: AdminService;
    try {
      admin = await startAdmin({
        config,
        log,
        hostname,
        tls,
        settings,
        directory: core.directory,
        auth: core.auth,
        spool,
        scheduler,
        trace,
        store,
        mailbox,
        lifecycle: { registry: core.registry, reconcile: (guid) => core!.lifecycle.reconcile(guid) },
        state: core.state,
        smtpSessions: () => smtp.sessions.size + (smtpWorkers?.sessionCount() ?? 0),
        smtpStats,
        sendLimits,
        sieveState,
        imapSessions: () => imap.reduce((n, s) => n + s.sessionCount(), 0),
        pop3Sessions: () => pop3.reduce((n, s) => n + s.sessionCount(), 0),
        ports,
      });
    } catch (err) {
      await retention.stop().catch(() => undefined);
      await traceRetention.stop().catch(() => undefined);
      await smtp.close().catch(() => undefined);
      await smtpWorkersListener?.close().catch(() => undefined);
      await Promise.all([...pop3, ...imap, ...managesieve].map((p) => p.close().catch(() => undefined)));
      await watch?.stop().catch(() => undefined);
      await imapWorkers?.close().catch(() => undefined);
      throw err;
    }
    if (admin.ports.admin !== undefined) ports.admin = admin.ports.admin;
    if (admin.ports.http !== undefined) ports.http = admin.ports.http;
    if (admin.ports.https !== undefined) ports.https = admin.ports.https;
    const running = { core, scheduler, sendLimits, trace, traceRetention };
    return {
      filtersOff,
      core,
      hostname,
      tls,
      store,
      spool,
      scheduler,
      trace,
      smtp,
      ports,
      mailbox,
      retention,
      admin,
      sendLimits,
      sessions,
      ...(watch ? { watch } : {}),
      imapWorkers,
      smtpWorkers,
      async close() {
        clearInterval(recheck);
        await watch?.stop();
        await admin.close();
        await retention.stop();
        await smtp.close();
        // The workers finish their sessions (each commit answered) before the counters and the queue stop.
        await smtpWorkersListener?.close();
        // After the listeners: the last accepted messages are counted, then written.
        running.sendLimits.close();
        await running.sendLimits.settled();
        await Promise.all([...pop3, ...imap, ...managesieve].map((p) => p.close()));
        await imapWorkers?.close();
        await clusterMail?.close();
        await running.scheduler.stop();
        await running.traceRetention.stop();
        // After the scheduler: its last attempts' events are written before the file is closed.
        await running.trace.close();
        sieveState.close();
        await running.core.close();
        mailbox.close();
      },
    };
  } catch (err) {
    // A listener that cannot bind (port in use) must not leave a scheduler delivering from this dataDir.
    await Promise.all(opened.map((o) => o.close().catch(() => undefined)));
    await scheduler?.stop().catch(() => undefined);
    sendLimits?.close();
    await traceRetention?.stop().catch(() => undefined);
    await trace?.close();
    await core?.close().catch(() => undefined);
    throw listenerError(config, err);
  }
}

/** A listener that could not bind: which one, on what address, and the config key that moves it. */
export class ListenerError extends Error {
  constructor(
    message: string,
    readonly code: string,
    readonly listener: string,
  ) {
    super(message);
  }
}

/**
 * Node's EADDRINUSE / EACCES name only the address; the admin needs the listener and the key to change. The error
 * carries the port it tried, which is the configured one (port 0 never collides).
 */
function listenerError(config: LoadedConfig, err: unknown): unknown {
  const e = err as NodeJS.ErrnoException & { port?: number; address?: string };
  if (e?.code !== 'EADDRINUSE' && e?.code !== 'EACCES' && e?.code !== 'EADDRNOTAVAIL') return err;
  const roles = Object.entries(config.listeners).filter(
    ([, l]) => l !== false && typeof l === 'object' && l !== null && (l as { port: number }).port === e.port,
  );
  if (roles.length === 0) return err;
  const [role] = roles[0];
  const where = `${e.address ?? (config.listeners[role as keyof LoadedConfig['listeners']] as { host?: string }).host ?? '*'}:${e.port}`;
  const why =
    e.code === 'EADDRINUSE'
      ? 'the address is already in use (another postern or mail server?)'
      : e.code === 'EACCES'
        ? 'permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)'
        : 'the address is not on this machine';
  return new ListenerError(
    `listener ${role} cannot listen on ${where}: ${why}; change listeners.${role}.port or listeners.${role}.host in the config, or set listeners.${role}: false`,
    e.code,
    role,
  );
}
