/**
 * The ManageSieve listener (RFC 5804; issue 15 §3): production port 4190, the embedded defaults 24190. STARTTLS
 * is required before AUTHENTICATE as on IMAP's 143 (unless mailbox.allowUnencrypted), the logins go through the
 * mailbox authenticator IMAP and POP3 use (master user, failure delay, the mailbox gate), and the scripts live in
 * the user's home in Pigeonhole's layout (src/sieve/storage.ts) so Dovecot and postern read the same files.
 */
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { createSecureContext } from 'node:tls';
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

export interface ManageSieveService {
  port: number;
  /** Connections open now (for /metrics). */
  sessionCount(): number;
  close(): Promise<void>;
}

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
  const maxClients = opts.maxClients ?? 500;
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    socket.setNoDelay(true);
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    if (sockets.size > maxClients) {
      socket.end(responseLine('BYE', 'TRYLATER', 'Too many connections, try again later'));
      return;
    }
    const session = new ManageSieveSession(socket, ctx, false);
    session.run().catch((err: unknown) => {
      log.error({ err, client: socket.remoteAddress }, 'managesieve: session failed');
      socket.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  log.info({ port, host: opts.host ?? '*' }, 'managesieve: listening');
  return {
    port,
    sessionCount: () => sockets.size,
    close() {
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      });
    },
  };
}
