/**
 * A loopback SMTP server for delivery tests (smtp-server on port 0) that records what it receives.
 *
 *   const sink = await startSmtpSink();                       // plain SMTP, no STARTTLS
 *   const tlsSink = await startSmtpSink({ starttls: true });  // STARTTLS with test/fixtures/tls/localhost.*
 *   const relay = await startSmtpSink({ starttls: true, auth: { user: 'relay', pass: 'secret' } });
 *
 * Replies per recipient by local part, unless `rcptReply` says otherwise:
 *   temp…  → 450 4.2.1 mailbox busy          perm…  → 550 5.1.1 no such user
 *   datatemp… / dataperm… are accepted at RCPT, and make the reply to the end of DATA 451 / 554.
 * Every accepted message is in `messages` with its envelope, the raw data (as un-dot-stuffed by smtp-server) and
 * whether the session was encrypted / authenticated.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SMTPServer, type SMTPServerOptions, type SMTPServerSession } from 'smtp-server';

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'tls');

/** The self-signed test pair: CN=localhost, SAN localhost, mx.test, smarthost.test, 127.0.0.1, ::1. */
export const TEST_TLS = {
  key: readFileSync(join(FIXTURES, 'localhost.key')),
  cert: readFileSync(join(FIXTURES, 'localhost.crt')),
};

export interface Reply {
  code: number;
  message: string;
}

export interface SinkMessage {
  from: string;
  to: string[];
  data: Buffer;
  /** TLS was in use (STARTTLS or implicit). */
  secure: boolean;
  /** The AUTH user, when the client authenticated. */
  user?: string;
  /** EHLO/HELO name the client gave. */
  helo: string;
  /** MAIL FROM parameters (SIZE, BODY, SMTPUTF8 …), upper-case keys. */
  mailParams: Record<string, string | true>;
}

export interface SinkOptions {
  /** Address to listen on; default 127.0.0.1 (any 127.x.y.z works on Linux: MX tests give each host its own). */
  host?: string;
  /** Port; default 0 (a free one). MX hosts share config.delivery.remotePort, so a second sink reuses the first's. */
  port?: number;
  /** Offer STARTTLS with the test certificate (default: STARTTLS hidden). */
  starttls?: boolean;
  /** Implicit TLS (like port 465). */
  secure?: boolean;
  /** Require AUTH PLAIN/LOGIN with these credentials. */
  auth?: { user: string; pass: string };
  /** SIZE limit advertised and enforced. */
  size?: number;
  /** Refuse every connection with this greeting (e.g. 421 or 554). */
  greeting?: Reply;
  /** Reply to a RCPT (null/undefined: the default temp…/perm… rule). Return { code: 250 } to accept. */
  rcptReply?: (address: string) => Reply | null | undefined;
  /** Reply to MAIL FROM (null/undefined: accept). */
  mailReply?: (address: string) => Reply | null | undefined;
  /** Reply to the end of DATA (null/undefined: the datatemp…/dataperm… rule, else 250). */
  dataReply?: (msg: SinkMessage) => Reply | null | undefined;
  /** Anything else for smtp-server (e.g. hide8BITMIME, hideSMTPUTF8). */
  server?: Partial<SMTPServerOptions>;
}

export interface SmtpSink {
  readonly host: string;
  readonly port: number;
  /** Messages accepted (2xx at the end of DATA). */
  readonly messages: SinkMessage[];
  /** Every message whose data was received, accepted or not. */
  readonly received: SinkMessage[];
  /** RCPT TO addresses seen, with the reply code given. */
  readonly rcpts: { address: string; code: number }[];
  /** Connections accepted so far. */
  connections: number;
  close(): Promise<void>;
}

function smtpError(r: Reply): Error {
  return Object.assign(new Error(r.message), { responseCode: r.code });
}

function defaultRcptReply(address: string): Reply | null {
  const local = address.slice(0, address.lastIndexOf('@')).toLowerCase();
  if (local.startsWith('temp')) return { code: 450, message: '4.2.1 mailbox busy, try later' };
  if (local.startsWith('perm')) return { code: 550, message: '5.1.1 no such user here' };
  return null;
}

function defaultDataReply(msg: SinkMessage): Reply | null {
  const locals = msg.to.map((a) => a.slice(0, a.lastIndexOf('@')).toLowerCase());
  if (locals.some((l) => l.startsWith('dataperm'))) return { code: 554, message: '5.6.0 content rejected' };
  if (locals.some((l) => l.startsWith('datatemp'))) return { code: 451, message: '4.3.0 try again later' };
  return null;
}

function addr(a: { address: string } | false): string {
  return a ? a.address : '';
}

export async function startSmtpSink(opts: SinkOptions = {}): Promise<SmtpSink> {
  const messages: SinkMessage[] = [];
  const received: SinkMessage[] = [];
  const rcpts: { address: string; code: number }[] = [];
  const sink = { host: opts.host ?? '127.0.0.1', port: 0, messages, received, rcpts, connections: 0, close: async () => {} };

  const options: SMTPServerOptions = {
    ...TEST_TLS,
    secure: opts.secure ?? false,
    hideSTARTTLS: !opts.starttls,
    authOptional: !opts.auth,
    // Hidden is not enough: smtp-server still answers a STARTTLS it did not announce.
    disabledCommands: [...(opts.auth ? [] : ['AUTH']), ...(opts.starttls || opts.secure ? [] : ['STARTTLS'])],
    allowInsecureAuth: false,
    disableReverseLookup: true,
    logger: false,
    ...(opts.size ? { size: opts.size } : {}),
    onConnect(_session: SMTPServerSession, cb: (err?: Error | null) => void) {
      sink.connections++;
      cb(opts.greeting ? smtpError(opts.greeting) : null);
    },
    onAuth(auth, _session, cb) {
      if (opts.auth && auth.username === opts.auth.user && auth.password === opts.auth.pass) {
        return cb(null, { user: auth.username });
      }
      cb(Object.assign(new Error('5.7.8 authentication failed'), { responseCode: 535 }));
    },
    onMailFrom(address, _session, cb) {
      const r = opts.mailReply?.(address.address);
      cb(r && r.code >= 400 ? smtpError(r) : null);
    },
    onRcptTo(address, _session, cb) {
      const r = opts.rcptReply?.(address.address) ?? defaultRcptReply(address.address);
      const code = r?.code ?? 250;
      rcpts.push({ address: address.address, code });
      cb(r && r.code >= 400 ? smtpError(r) : null);
    },
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const mailFrom = session.envelope.mailFrom;
        const params: Record<string, string | true> = {};
        if (mailFrom && mailFrom.args) for (const [k, v] of Object.entries(mailFrom.args)) params[k.toUpperCase()] = v;
        const msg: SinkMessage = {
          from: addr(mailFrom),
          to: session.envelope.rcptTo.map((r) => r.address),
          data: Buffer.concat(chunks),
          secure: session.secure,
          ...(session.user ? { user: String(session.user) } : {}),
          helo: session.hostNameAppearsAs,
          mailParams: params,
        };
        received.push(msg);
        if (stream.sizeExceeded) return cb(smtpError({ code: 552, message: '5.3.4 message too big' }));
        const r = opts.dataReply?.(msg) ?? defaultDataReply(msg);
        if (r && r.code >= 400) return cb(smtpError(r));
        messages.push(msg);
        cb(null, r?.message ?? '2.0.0 queued');
      });
    },
    ...opts.server,
  };

  const server = new SMTPServer(options);
  server.on('error', () => {
    /* client errors (resets, TLS failures) are part of the tests */
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, sink.host, () => {
      server.removeListener('error', reject);
      resolve();
    });
  });
  const address = server.server.address();
  sink.port = typeof address === 'object' && address ? address.port : 0;
  sink.close = () => new Promise<void>((resolve) => server.close(() => resolve()));
  return sink;
}
