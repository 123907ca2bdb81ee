/**
 * The IMAP listener (DESIGN.md §2 `imap/`): plain with STARTTLS (143) or implicit TLS (993). Everything
 * protocol-specific is in connection.ts and commands/; this file only builds the listener and its dependencies.
 */
import { NOTIFY_BACKLOG_BYTES } from './notify.js';
import { createServer as createNetServer, type Server, type Socket } from 'node:net';
import { createSecureContext, createServer as createTlsServer } from 'node:tls';
import type { Authenticator } from '../auth/authenticator.js';
import type { UserEntry } from '../directory/types.js';
import type { Logger } from '../lib/logger.js';
import type { MailboxAccess } from '../store/mailbox.js';
import { userOwner, type MailboxOwner } from '../store/types.js';
import type { UrlauthKeys } from '../store/urlauth-keys.js';
import type { SessionRegistry } from '../lib/session-registry.js';
import { ImapSession, type HandoffState, type ImapDeps, type ImapSettings } from './connection.js';

export interface ImapServerOptions {
  /** Ignored with `listen: false`. */
  port: number;
  /**
   * False: bind nothing; connections accepted elsewhere (the primary process, imap.workers) are given to `accept`.
   * Default true.
   */
  listen?: boolean;
  host?: string;
  /** Implicit TLS (993) when true; STARTTLS on a plain listener otherwise. */
  secure: boolean;
  /** Certificate and key; without them a plain listener offers no STARTTLS (and LOGIN stays disabled). */
  tls?: { cert: Buffer | string; key: Buffer | string };
  auth: Authenticator;
  mailbox: MailboxAccess;
  settings: ImapSettings;
  hostname: string;
  log: Logger;
  /** Whose mailbox a logged-in user opens; by default the user's own (by login). */
  resolveOwner?: (user: UserEntry) => MailboxOwner;
  /**
   * Groups (in `directory.groupDelivery: shared` mode) whose shared folders the user may open and write, nested
   * membership included; they appear under "Shared/<group>". Without it there is no shared namespace.
   */
  sharedGroups?: (user: UserEntry) => Promise<string[]>;
  /**
   * Teaches the spam filter when a user moves a message into Junk ('spam') or out of it ('ham'); the hook decides
   * whether this user may teach (the seed's `spamtrainers` group) and talks to spamd. Errors are only logged.
   */
  /** Resolves false when the message was not taught (the user may not train); anything else counts as taught. */
  learn?: (user: UserEntry, kind: 'spam' | 'ham', message: Buffer) => Promise<boolean | void>;
  /** RFC 7889 APPENDLIMIT; 50 MiB by default. */
  appendLimit?: number;
  /** RFC 3501 §5.4 autologout timer: at least 30 minutes (the default); tests shorten it. */
  idleTimeoutMs?: number;
  /** Connections from one client address (default 50: a NAT'd office shares one address). */
  maxPerAddress?: number;
  /** Logged-in sessions of one user (default 20: Thunderbird alone opens up to 5 per account and device). */
  maxPerUser?: number;
  /** RFC 5465 §5.8: unsent output past which NOTIFY overflows (default 4 MiB; tests make it small). */
  notifyBacklogBytes?: number;
  /** URLAUTH (RFC 4467) mailbox access keys; without them GENURLAUTH/URLFETCH are not offered. */
  urlauthKeys?: UrlauthKeys;
  /**
   * RFC 2221 login referrals: the `imap://host[:port]/` holding the mailboxes of a domain (the domain setting
   * `imapReferral`), or null when its users log in here. Without it nobody is referred.
   */
  imapReferral?: (domain: string) => string | null | undefined;
  /** Open sessions by user (shared with POP3), so an AD change can end a user's sessions (directory/watch.ts). */
  sessions?: SessionRegistry;
  /** imap.workers: logins move to the mailbox's home worker (ImapDeps.handoff; worker-main.ts). */
  handoff?: ImapDeps['handoff'];
}

export interface ImapServer {
  /** The bound port (0 with `listen: false`). */
  port: number;
  /** Serves a connection accepted elsewhere (a raw TCP socket: TLS, for an implicit-TLS server, starts here). */
  accept(socket: Socket): void;
  /** Serves a plain connection whose LOGIN another worker verified (ImapSession.handOff): answered, then served. */
  adopt(socket: Socket, state: HandoffState): void;
  /** Connections open now (for /metrics). */
  sessionCount(): number;
  close(): Promise<void>;
}

export async function startImap(opts: ImapServerOptions): Promise<ImapServer> {
  const log = opts.log.child({ component: 'imap' });
  const secureContext = opts.tls ? createSecureContext({ cert: opts.tls.cert, key: opts.tls.key }) : undefined;
  if (opts.secure && !secureContext) throw new Error('imap: implicit TLS needs a certificate');
  const sessions = new Set<ImapSession>();
  const deps: ImapDeps = {
    auth: opts.auth,
    mailbox: opts.mailbox,
    settings: opts.settings,
    hostname: opts.hostname,
    log,
    resolveOwner: opts.resolveOwner ?? ((user: UserEntry): MailboxOwner => userOwner(user)),
    sharedGroups: opts.sharedGroups,
    learn: opts.learn,
    secureContext,
    appendLimit: opts.appendLimit ?? 50 * 1024 * 1024,
    idleTimeoutMs: opts.idleTimeoutMs ?? 30 * 60 * 1000,
    maxPerUser: opts.maxPerUser ?? 20,
    notifyBacklogBytes: opts.notifyBacklogBytes ?? NOTIFY_BACKLOG_BYTES,
    userSessions: new Map<string, number>(),
    imapReferral: opts.imapReferral,
    sessions: opts.sessions,
    urlauth: opts.urlauthKeys ? { keys: opts.urlauthKeys, findUser: (login: string) => opts.auth.findUser(login) } : undefined,
    handoff: opts.handoff,
  };
  const maxPerAddress = opts.maxPerAddress ?? 50;
  const perAddress = new Map<string, number>();
  const onConnection = (socket: Socket, adopted?: HandoffState) => {
    // Replies go out in several writes (untagged lines, then the tagged one): without TCP_NODELAY, Nagle's
    // algorithm holds the last piece for a delayed ACK (~40 ms per command, measured in test/bench/imap.bench.ts).
    socket.setNoDelay(true);
    const address = socket.remoteAddress ?? '';
    const count = perAddress.get(address) ?? 0;
    if (count >= maxPerAddress) {
      log.warn({ client: address, connections: count }, 'imap: too many connections from one address');
      socket.end('* BYE Too many connections from your address\r\n');
      return;
    }
    perAddress.set(address, count + 1);
    socket.once('close', () => {
      const n = (perAddress.get(address) ?? 1) - 1;
      if (n > 0) perAddress.set(address, n);
      else perAddress.delete(address);
    });
    const session = new ImapSession(socket, deps, { secure: opts.secure });
    sessions.add(session);
    socket.once('close', () => sessions.delete(session));
    log.debug({ client: socket.remoteAddress, secure: opts.secure, adopted: adopted !== undefined }, 'imap connection');
    if (adopted) session.adopt(adopted);
    else session.start();
  };
  const server: Server = opts.secure
    ? createTlsServer({ cert: opts.tls!.cert, key: opts.tls!.key }, (socket) => onConnection(socket))
    : createNetServer((socket) => onConnection(socket));
  const listening = opts.listen !== false;
  if (listening) {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.port, opts.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  }
  const address = listening ? server.address() : null;
  const port = typeof address === 'object' && address ? address.port : listening ? opts.port : 0;
  if (listening) log.info({ port, secure: opts.secure }, 'imap listening');
  return {
    port,
    // A tls.Server wraps what its 'connection' event brings, as for a socket it accepted itself.
    accept: (socket) => void server.emit('connection', socket),
    adopt: (socket, state) => onConnection(socket, state),
    sessionCount: () => sessions.size,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sessions) s.bye('Server shutting down');
        if (!listening) return resolve();
        server.close(() => resolve());
      }),
  };
}
