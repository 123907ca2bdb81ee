/**
 * The POP3 listeners (issue 5 §5): RFC 1939 with STLS (RFC 2595) on the plain port (production 110) and implicit
 * TLS (production 995), AUTH PLAIN (RFC 5034) and USER/PASS, on MailboxAccess. One call starts one listener; the
 * lead starts two (pop3, pop3s) with the same `mailbox`, so the maildrop lock covers both.
 */
import { createSecureContext } from 'node:tls';
import { listenLineProtocol, type LineListener } from '../lib/line-session.js';
import type { Logger } from '../lib/logger.js';
import type { TlsMaterial } from '../lib/tls.js';
import type { MailboxAccess } from '../store/mailbox.js';
import type { SessionRegistry } from '../lib/session-registry.js';
import { LocalMaildropLocks, type MaildropLocks } from './maildrop-locks.js';
import { DEFAULT_IDLE_TIMEOUT_MS, DEFAULT_MAX_LINE, GSSAPI_MAX_LINE, Pop3Session, type Pop3Context } from './session.js';

export interface Pop3Options {
  port: number;
  host?: string;
  /** Implicit TLS (995) when true; STLS offered when false. */
  secure: boolean;
  tls: TlsMaterial;
  auth: Pop3Context['auth'];
  mailbox: MailboxAccess;
  /** Read at every login: mailbox.pop3, mailbox.allowUnencrypted. */
  settings: Pop3Context['settings'];
  hostname: string;
  log: Logger;
  /** RFC 1939 §3: at least 10 minutes (the default). Tests shorten it. */
  idleTimeoutMs?: number;
  maxLineBytes?: number;
  /** Connections at once on this listener (default 1000); more are answered "-ERR [SYS/TEMP]" and closed. */
  maxClients?: number;
  /** Open sessions by user (shared with IMAP), so an AD change can end a user's sessions (directory/watch.ts). */
  sessions?: SessionRegistry;
  /** The maildrop locks; default one table per `mailbox` in this process. A cluster passes its shared ones. */
  locks?: MaildropLocks;
}

export type Pop3Service = LineListener;

// One lock table per mailbox object: the plain and the TLS listener share it (unless the caller gives `locks`).
const lockTables = new WeakMap<MailboxAccess, MaildropLocks>();

export async function startPop3(opts: Pop3Options): Promise<Pop3Service> {
  const log = opts.log.child({ component: 'pop3' });
  let locks = opts.locks ?? lockTables.get(opts.mailbox);
  if (!locks) lockTables.set(opts.mailbox, (locks = new LocalMaildropLocks()));
  const ctx: Pop3Context = {
    hostname: opts.hostname,
    auth: opts.auth,
    mailbox: opts.mailbox,
    settings: opts.settings,
    log,
    secureContext: createSecureContext({ cert: opts.tls.cert, key: opts.tls.key }),
    idleTimeoutMs: opts.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS,
    maxLineBytes: opts.maxLineBytes ?? (opts.auth.gssapiConfigured?.() ? GSSAPI_MAX_LINE : DEFAULT_MAX_LINE),
    locks,
    sessions: opts.sessions,
  };
  return listenLineProtocol({
    port: opts.port,
    host: opts.host,
    log,
    protocol: 'pop3',
    maxClients: opts.maxClients ?? 1000,
    busyReply: '-ERR [SYS/TEMP] too many connections, try again later\r\n',
    ...(opts.secure ? { tls: opts.tls } : {}),
    session: (socket, secure) => new Pop3Session(socket, ctx, secure).run(),
  });
}
