/**
 * What the admin front end is given by the server: the core (settings, directory, authenticator), the queue, the
 * mail store and the listeners' bound ports. Everything is read at request time, so a setting changed through the
 * API, the CLI or another process applies to the next request and to the running protocol servers at once.
 */
import type { FastifyInstance } from 'fastify';
import type { Activity } from './activity.js';
import type { Authenticator } from '../auth/authenticator.js';
import type { LoadedConfig } from '../config/load.js';
import type { CachedDirectory } from '../directory/cache.js';
import type { Logger } from '../lib/logger.js';
import type { TlsMaterial } from '../lib/tls.js';
import type { Scheduler } from '../queue/scheduler.js';
import type { Spool } from '../queue/spool.js';
import type { Settings } from '../settings/store.js';
import type { TracePath, TraceQuery } from '../trace/types.js';
import type { MaildirStore } from '../store/maildir.js';
import type { MaildirMailbox } from '../store/maildir-mailbox.js';

export interface AdminDeps {
  config: LoadedConfig;
  log: Logger;
  /** Our FQDN: the server name clients are told in autoconfig. */
  hostname: string;
  tls: TlsMaterial;
  settings: Settings;
  directory: CachedDirectory;
  auth: Authenticator;
  spool: Spool;
  scheduler: Scheduler;
  /** Message trace (GET /api/trace); absent in apps built without one, where the route answers 503. */
  trace?: { query(q: TraceQuery): TracePath[] | Promise<TracePath[]> };
  store: MaildirStore;
  mailbox: MaildirMailbox;
  /** Current SMTP sessions (all listeners), for /metrics. */
  smtpSessions?: () => number;
  /** Messages received and refusals by step, recent refusals (src/smtp/stats.ts). */
  smtpStats?: import('../smtp/stats.js').SmtpStats;
  /** Send limits: who is at or near them, overrides, alerts (src/limits). */
  sendLimits?: import('../limits/send-limits.js').SendLimits;
  /** Out-of-office set by IT (src/sieve/state.ts); the routes answer 503 without it. */
  sieveState?: Pick<import('../sieve/state.js').SieveState, 'getOutOfOffice' | 'setOutOfOffice' | 'clearOutOfOffice'>;
  /** IMAP and POP3 connections open now. */
  imapSessions?: () => number;
  pop3Sessions?: () => number;
  /** Recent deliveries and delivery counters (startAdmin makes one when absent). */
  activity?: Activity;
  /** Mailbox registry and lifecycle (issue 13): the orphaned-mailbox routes exist only with it. */
  lifecycle?: { registry: import('../lifecycle/registry.js').MailboxRegistry; reconcile(guid?: string): Promise<import('../lifecycle/lifecycle.js').ReconcileResult> };
  /** DKIM keys (GET/POST/DELETE /api/dkim); default: openDkimKeys of the config and the state store's pool. */
  dkimKeys?: import('../delivery/dkim-keys.js').DkimKeyStore;
  /** The state store (issue 16): /readyz reports PostgreSQL's reachability with state postgres. */
  state?: import('../state/index.js').StateStore;
  /** Bound ports by listener name (smtp, submission, smtps, imap, imaps, pop3, pop3s), read at request time. */
  ports: Readonly<Record<string, number>>;
}

/** Route files take the app with its default type parameters (the TLS server is cast once, in server.ts). */
export type App = FastifyInstance;
