/**
 * The three SMTP listeners (smtp-server owns the protocol; each hook is its own file):
 *  - smtp (25): other MTAs; STARTTLS offered, AUTH only with smtp.authOnPort25; local and relay domains only.
 *  - submission (587): STARTTLS required before AUTH (RFC 3207 §4, RFC 4954 §4), AUTH required before MAIL.
 *  - smtps (465): implicit TLS (RFC 8314 §3.3), AUTH required before MAIL.
 * AUTH is offered only inside TLS, on any listener (on-secure.ts).
 * Each listener has its own pregreet wait (pregreet.ts): on for smtp, off for submission and smtps.
 */
import type { AddressInfo, Socket } from 'node:net';
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';
import type { Config } from '../config/schema.js';
import { SmtpError } from '../lib/errors.js';
import type { TlsMaterial } from '../lib/tls.js';
import { installBurl } from './burl.js';
import type { UserEntry } from '../directory/types.js';
import { makeOnAuth } from './on-auth.js';
import { COMPONENT, makeOnClose, makeOnConnect } from './on-connect.js';
import { makeOnData, type OnDataOptions } from './on-data.js';
import { makeOnMailFrom } from './on-mail-from.js';
import { makeOnRcptTo } from './on-rcpt-to.js';
import { disabledCommandReply, makeOnSecure } from './on-secure.js';
import { EARLY_TALKER_REPLY, Pregreet } from './pregreet.js';
import { Sessions, type ListenerRole, type SmtpDeps } from './session.js';

export interface SmtpListener {
  role: ListenerRole;
  port: number;
  host: string;
  server: SMTPServer;
  /** Serves a connection accepted elsewhere (handed over by the main process), as if this listener had accepted it. */
  accept(socket: Socket): void;
}

export interface SmtpService {
  listeners: SmtpListener[];
  sessions: Sessions;
  close(): Promise<void>;
}

export interface SmtpServiceOptions {
  deps: SmtpDeps;
  tls: TlsMaterial;
  listeners: Config['listeners'];
  limits: Config['smtp'];
  data: OnDataOptions;
  /**
   * BURL (RFC 4468) on submission and smtps: the message data an IMAP URL names, fetched for the authenticated user
   * (undefined when it cannot be had). Without it BURL is not offered.
   */
  burl?: (url: string, user: UserEntry) => Promise<Buffer | undefined>;
  /**
   * false: the listeners are not bound; connections come from accept() (an SMTP worker process, src/smtp/workers.ts,
   * serving what the main process accepted). Default true.
   */
  listen?: boolean;
  /** Sessions served elsewhere (the SMTP worker processes) that count against smtp.maxClients too. */
  otherSessions?: () => number;
  /** Called when a session (any connection smtp-server took on) has ended. */
  onSessionEnd?: () => void;
}

export async function startSmtp(opts: SmtpServiceOptions): Promise<SmtpService> {
  const { deps, tls } = opts;
  const sessions = new Sessions();
  const started: SmtpListener[] = [];
  // One limit for all listeners together; smtp-server's maxClients counts per server. Only sessions that were let in
  // are counted: smtp-server calls onClose for a connection refused in onConnect too.
  const counted = new Set<string>();
  const pregreet = new Pregreet(deps.settings);

  const kerberos = deps.auth.gssapiConfigured();
  for (const role of ['smtp', 'submission', 'smtps'] as const) {
    const l = opts.listeners[role];
    if (l === false) continue;
    const submission = role !== 'smtp';
    const options: SMTPServerOptions = {
      name: deps.hostname,
      // smtp-server greets with "<name> ESMTP <banner>".
      banner: 'postern',
      key: tls.key,
      cert: tls.cert,
      secure: role === 'smtps',
      // smtp-server offers AUTH only after TLS unless allowInsecureAuth: passwords never cross in clear text.
      allowInsecureAuth: false,
      // GSSAPI (RFC 4752, Kerberos single sign-on) when auth.kerberos is configured, announced only while its keytab
      // is readable (the authMethodAvailable option of our smtp-server patch; auth/gssapi.ts).
      authMethods: kerberos ? ['PLAIN', 'LOGIN', 'GSSAPI'] : ['PLAIN', 'LOGIN'],
      authMethodAvailable: (method) => method !== 'GSSAPI' || deps.auth.gssapiAvailable(),
      authOptional: !submission,
      authRequiredMessage: '5.7.0 Authentication required',
      disabledCommands: [],
      maxClients: opts.limits.maxClients,
      maxRecipients: opts.limits.maxRecipients,
      // A Kerberos AP-REQ carries the user's PAC (every group SID): RFC 4954 §4 allows AUTH lines and responses of
      // 12,288 octets, so with GSSAPI on, no line limit below that.
      maxCommandLength: kerberos ? Math.max(opts.limits.maxLineLength, 12_288) : opts.limits.maxLineLength,
      socketTimeout: opts.limits.socketTimeoutSeconds * 1000,
      // Every reply but the greeting and the answer to HELO/EHLO has an enhanced status code (RFC 2034 §3): ours are
      // in our reply texts (SmtpError), smtp-server adds them to its own replies and keeps ours (patched).
      hideENHANCEDSTATUSCODES: false,
      disabledCommandReply: disabledCommandReply(role, deps.settings),
      hideDSN: true,
      // Over-size messages are refused by on-data (552 5.3.4 with our reply text); smtp-server still counts the bytes
      // and flags stream.sizeExceeded, and refuses a MAIL FROM whose SIZE= is over the limit.
      rejectOversized: false,
      size: deps.settings.get('queue.maxMessageSizeMB') * 1024 * 1024,
      disableReverseLookup: true,
      logger: false,
      // The early-talker pause of smtp-server is ours to set (patches/smtp-server+*.patch): postscreen's pregreet.
      greetingDelay: (client) => pregreet.delay(l.pregreet, client),
      earlyTalkerResponse: EARLY_TALKER_REPLY,
    };
    if (submission && opts.burl) {
      installBurl();
      const fetch = opts.burl;
      options.burl = async (url, session) => {
        const user = sessions.get(session).user;
        return user ? fetch(url, user) : undefined;
      };
    }
    const server = new SMTPServer({
      ...options,
      onConnect: (session, cb) => {
        if (counted.size + (opts.otherSessions?.() ?? 0) >= opts.limits.maxClients) {
          deps.log.warn({ component: COMPONENT[role], client: session.remoteAddress, event: 'reject', reason: 'maxClients' }, 'too many connections');
          return cb(new SmtpError(421, '4.7.0', `${deps.hostname} Too many connections, try again later`));
        }
        counted.add(session.id);
        if (pregreet.greeted(l.pregreet, session.id)) {
          deps.log.debug({ component: COMPONENT[role], client: session.remoteAddress, event: 'pregreet', result: 'pass' }, 'pregreet test passed');
        }
        makeOnConnect(deps, role, sessions, () => {
          // "Queue message max size", read per connection so a change applies without a restart (RFC 1870 SIZE).
          server.options.size = deps.settings.get('queue.maxMessageSizeMB') * 1024 * 1024;
        })(session, cb);
      },
      onClose: (session) => {
        counted.delete(session.id);
        pregreet.forget(session.id);
        deps.sendLimits?.release(session.id);
        makeOnClose(sessions)(session);
        opts.onSessionEnd?.();
      },
      onSecure: makeOnSecure(deps, role, sessions),
      onAuth: makeOnAuth(deps, sessions),
      onMailFrom: makeOnMailFrom(deps, sessions),
      onRcptTo: makeOnRcptTo(deps, sessions),
      onData: makeOnData(deps, sessions, opts.data),
    });
    server.on('error', (err) => deps.log.error({ component: COMPONENT[role], err }, 'listener error'));
    server.on('earlytalker', (client: { id: string; remoteAddress: string }) => {
      pregreet.forget(client.id);
      const reply = `${EARLY_TALKER_REPLY.code} ${EARLY_TALKER_REPLY.message}`;
      deps.log.info({ component: COMPONENT[role], client: client.remoteAddress, event: 'reject', stage: 'pregreet', reply }, 'client talked before the greeting');
      deps.stats?.countRejected({ listener: role, client: client.remoteAddress, stage: 'connect', reply });
    });
    // smtp-server's connection handler is the net.Server's 'connection' listener: a socket handed over from another
    // process takes the same path (PROXY header, implicit TLS, greeting) as one this server accepted.
    const accept = (socket: Socket) => void server.server.emit('connection', socket);
    if (opts.listen === false) {
      started.push({ role, port: 0, host: '', server, accept });
      continue;
    }
    await new Promise<void>((resolve, reject) => {
      server.server.once('error', reject);
      server.listen(l.port, l.host, () => {
        server.server.off('error', reject);
        resolve();
      });
    });
    const addr = server.server.address() as AddressInfo;
    started.push({ role, port: addr.port, host: addr.address, server, accept });
  }

  return {
    listeners: started,
    sessions,
    async close() {
      await Promise.all(started.map((l) => new Promise<void>((resolve) => l.server.close(() => resolve()))));
    },
  };
}
