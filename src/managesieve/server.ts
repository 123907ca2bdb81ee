/**
 * The ManageSieve listener (RFC 5804; issue 15 §3): production port 4190, the embedded defaults 24190. STARTTLS
 * is required before AUTHENTICATE as on IMAP's 143 (unless mailbox.allowUnencrypted), the logins go through the
 * mailbox authenticator IMAP and POP3 use (master user, failure delay, the mailbox gate), and the scripts live in
 * the user's home in Pigeonhole's layout (src/sieve/storage.ts) so Dovecot and postern read the same files.
 */
import { createSecureContext } from 'node:tls';
import { listenLineProtocol, type LineListener } from '../lib/line-session.js';
import type { UserEntry } from '../directory/types.js';
import type { Logger } from '../lib/logger.js';
import type { SessionRegistry } from '../lib/session-registry.js';
import type { TlsMaterial } from '../lib/tls.js';
import type { SieveScriptStore } from '../sieve/storage.js';
import { responseLine } from './response.js';
import { DEFAULT_IDLE_TIMEOUT_MS, DEFAULT_MAX_LINE, ManageSieveSession, type ManageSieveContext, type SieveChecker } from './session.js';

export interface ManageSieveOptions {
  port: number;
  host?: string;
  tls: TlsMaterial;
  auth: ManageSieveContext['auth'];
  /** Read at every login: mailbox.allowUnencrypted. */
  settings: ManageSieveContext['settings'];
  scripts: SieveScriptStore;
  /** The directory holding the user's Maildir/ (MaildirStore.homePath of the user's owner). */
  home: (user: UserEntry) => string;
  sieve: SieveChecker;
  hostname: string;
  log: Logger;
  idleTimeoutMs?: number;
  /** Connections at once on this listener (default 500); more are answered BYE (TRYLATER) and closed. */
  maxClients?: number;
  /** Open sessions by user (shared with IMAP and POP3): an AD change that takes access away ends them. */
  sessions?: SessionRegistry;
}

export type ManageSieveService = LineListener;

export async function startManageSieve(opts: ManageSieveOptions): Promise<ManageSieveService> {
  const log = opts.log.child({ component: 'managesieve' });
  // A literal may be a whole script: up to the size quota, and a bound when the quota has none.
  const maxScript = opts.scripts.quota.maxScriptBytes > 0 ? opts.scripts.quota.maxScriptBytes : 16 * 1024 * 1024;
  const ctx: ManageSieveContext = {
    hostname: opts.hostname,
    auth: opts.auth,
    settings: opts.settings,
    scripts: opts.scripts,
    home: opts.home,
    sieve: opts.sieve,
    log,
    secureContext: createSecureContext({ cert: opts.tls.cert, key: opts.tls.key }),
    idleTimeoutMs: opts.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS,
    maxLineBytes: DEFAULT_MAX_LINE,
    maxLiteralBytes: maxScript,
    sessions: opts.sessions,
  };
  return listenLineProtocol({
    port: opts.port,
    host: opts.host,
    log,
    protocol: 'managesieve',
    maxClients: opts.maxClients ?? 500,
    busyReply: responseLine('BYE', 'TRYLATER', 'Too many connections, try again later'),
    session: (socket) => new ManageSieveSession(socket, ctx, false).run(),
  });
}
