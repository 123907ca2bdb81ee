/**
 * What the SMTP protocol tests share: a whole server (test/helpers/server.ts) with the test TLS pair, so no
 * self-signed key is generated per file; nodemailer transports for the three listeners; spool and log helpers.
 */
import { join } from 'node:path';
import { Writable } from 'node:stream';
import nodemailer from 'nodemailer';
import type { QueueEnvelope } from '../../src/queue/types.ts';
import { ROOT } from '../helpers/cli.ts';
import { startDnsServer, type DnsTable } from '../helpers/dns-server.ts';
import { RawSmtp, sendRaw, type SmtpReply } from '../helpers/raw-smtp.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { startSmtpSink, type SmtpSink } from '../helpers/smtp-sink.ts';

export const TLS_FILES = {
  cert: join(ROOT, 'test/fixtures/tls/localhost.crt'),
  key: join(ROOT, 'test/fixtures/tls/localhost.key'),
};

/** fixtures/ad/README.md */
export const PASSWORD = 'Corp!Passw0rd';
export const ADMIN_PASSWORD = 'Adm1n!Secret';
export const JOHN = { user: 'john.smith', pass: PASSWORD };

export function startSmtpTestServer(over: Record<string, unknown> = {}, opts: { domains?: string[]; logStream?: NodeJS.WritableStream } = {}): Promise<TestServer> {
  return startTestServer({ tls: TLS_FILES, ...over }, opts);
}

/**
 * The server with a remote side: mail for other domains goes to an SMTP sink on loopback, whose MX records `zones`
 * give through a DNS server of the test's own. `close` stops all three.
 */
export async function startWithRemote(zones: DnsTable): Promise<{ server: TestServer; sink: SmtpSink; close(): Promise<void> }> {
  const sink = await startSmtpSink();
  const dns = await startDnsServer(zones);
  const server = await startSmtpTestServer({ delivery: { remotePort: sink.port }, dns: { servers: [dns.address], timeoutMs: 500 } });
  return {
    server,
    sink,
    async close() {
      await server.close();
      await sink.close();
      await dns.close();
    },
  };
}

export type Listener = 'smtp' | 'submission' | 'smtps';

/**
 * A nodemailer transport for one listener the way a mail client uses it: 465 implicit TLS, 587 STARTTLS required,
 * 25 opportunistic STARTTLS. Certificates are not verified (test pair).
 */
export function transport(server: TestServer, listener: Listener, auth?: { user: string; pass: string }) {
  return nodemailer.createTransport({
    host: '127.0.0.1',
    port: server.ports[listener],
    secure: listener === 'smtps',
    requireTLS: listener === 'submission',
    tls: { rejectUnauthorized: false },
    name: 'client.example.net',
    ...(auth ? { auth } : {}),
  });
}

/** The queue id in a "250 2.0.0 Ok: queued as ID" reply. */
export function queueIdOf(response: string): string {
  const m = /queued as ([0-9A-Z]+)/.exec(response);
  if (!m) throw new Error(`no queue id in ${JSON.stringify(response)}`);
  return m[1];
}

/** Waits until no message is left in the spool (delivered, bounced or expired), or throws after `ms`. */
export async function waitForEmptyQueue(server: TestServer, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    const left = await server.spool.list();
    if (left.length === 0) return;
    if (Date.now() > deadline) throw new Error(`queue not empty after ${ms} ms: ${left.map((e) => e.id).join(', ')}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Every envelope the spool holds now. */
export function queued(server: TestServer): Promise<QueueEnvelope[]> {
  return server.spool.list();
}

/** Connects to a listener and says EHLO (after the TLS handshake for smtps). `timeoutMs`: per reply (default 5 s). */
export async function rawClient(
  server: TestServer,
  listener: Listener,
  ehlo: string | false = 'client.example.net',
  opts: { timeoutMs?: number } = {},
): Promise<RawSmtp> {
  const c = await RawSmtp.connect(server.ports[listener], { tls: listener === 'smtps', timeoutMs: opts.timeoutMs });
  if (ehlo) {
    const r = await c.command(`EHLO ${ehlo}`);
    if (r.code !== 250) throw new Error(`EHLO refused: ${r.raw}`);
  }
  return c;
}

/** A raw client on 587 that did STARTTLS, EHLO and AUTH PLAIN (or on 465: TLS, EHLO, AUTH PLAIN). */
export async function submissionClient(
  server: TestServer,
  auth = JOHN,
  opts: { listener?: 'submission' | 'smtps'; timeoutMs?: number } = {},
): Promise<RawSmtp> {
  const listener = opts.listener ?? 'submission';
  const c = await rawClient(server, listener, 'client.example.net', opts);
  try {
    if (listener === 'submission') {
      await c.starttls();
      await c.command('EHLO client.example.net');
    }
    const r = await c.authPlain(auth.user, auth.pass);
    if (r.code !== 235) throw new Error(`AUTH failed: ${r.raw}`);
  } catch (err) {
    c.close();
    throw err;
  }
  return c;
}

/**
 * What a spam script does with a stolen account: `total` messages from `from` to `to` over `connections`
 * authenticated submission connections at once, each going on after a refusal (with RSET first when `rset`).
 * Returns every final reply (250 after DATA, or the first refusal); a reply other than 250 or 451 throws.
 */
export async function flood(
  server: TestServer,
  auth: { user: string; pass: string },
  opts: { total: number; connections: number; from: string; to: string[]; rset?: boolean; timeoutMs?: number },
): Promise<SmtpReply[]> {
  const replies: SmtpReply[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: opts.connections }, async () => {
      const c = await submissionClient(server, auth, { timeoutMs: opts.timeoutMs });
      try {
        while (next < opts.total) {
          const n = next++;
          const r = await sendRaw(c, opts.from, opts.to, message(`flood ${n}`));
          replies.push(r);
          // After a refused MAIL FROM no transaction is open; after a 250 the next MAIL starts a new one.
          if (r.code !== 250 && r.code !== 451) throw new Error(`unexpected reply ${r.raw}`);
          if (opts.rset) {
            const reset = await c.command('RSET');
            if (reset.code !== 250) throw new Error(`RSET refused: ${reset.raw}`);
          }
        }
        await c.command('QUIT');
      } finally {
        c.close();
      }
    }),
  );
  return replies;
}

/** A small RFC 5322 message with CRLF line endings. */
export function message(subject: string, body = 'Hello.', headers: Record<string, string> = {}): string {
  const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
  return `From: <sender@outside.example>\r\nTo: <someone@example.com>\r\nSubject: ${subject}\r\nMessage-ID: <${subject.replace(/\W/g, '')}.${Date.now()}@outside.example>\r\n${extra}\r\n${body}\r\n`;
}

/** A logger destination that keeps the parsed JSON lines. */
export function logCapture(): { stream: Writable; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  let rest = '';
  const stream = new Writable({
    write(chunk, _enc, cb) {
      rest += String(chunk);
      const parts = rest.split('\n');
      rest = parts.pop() ?? '';
      for (const p of parts) if (p.trim()) lines.push(JSON.parse(p) as Record<string, unknown>);
      cb();
    },
  });
  return { stream, lines };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
