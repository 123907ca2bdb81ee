/**
 * The pregreet test (issue 11; src/smtp/pregreet.ts): the greeting on port 25 waits listeners.smtp.pregreet.waitMs
 * and a client that talks first is refused with 554 5.5.1; submission and smtps greet at once, and so does port 25
 * for smtp.relayFrom / smtp.trustedNetworks clients and for a client that passed the test before. Raw sockets: a
 * real client never talks first.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { TestServer } from '../helpers/server.ts';
import { startSmtpTestServer } from './smtp-env.ts';

const WAIT_MS = 400;

/** Connects and resolves with what the server said within `ms`, sending `early` right after the TCP handshake. */
function talk(port: number, opts: { early?: string; ms?: number; tls?: boolean } = {}): Promise<{ text: string; firstByteMs: number; closed: boolean }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    let text = '';
    let firstByteMs = -1;
    let closed = false;
    const socket: Socket = opts.tls ? tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false }) : connect(port, '127.0.0.1');
    socket.once(opts.tls ? 'secureConnect' : 'connect', () => {
      if (opts.early) socket.write(opts.early);
    });
    socket.on('data', (d: Buffer) => {
      if (firstByteMs < 0) firstByteMs = performance.now() - t0;
      text += d.toString('latin1');
    });
    socket.on('error', reject);
    socket.on('close', () => {
      closed = true;
    });
    setTimeout(() => {
      socket.destroy();
      resolve({ text, firstByteMs, closed });
    }, opts.ms ?? WAIT_MS + 600);
  });
}

describe('pregreet test on port 25', () => {
  let server: TestServer;
  before(async () => {
    server = await startSmtpTestServer({
      listeners: {
        smtp: { port: 0, host: '127.0.0.1', pregreet: { waitMs: WAIT_MS } },
        submission: { port: 0, host: '127.0.0.1' },
        smtps: { port: 0, host: '127.0.0.1' },
        imap: false,
        imaps: false,
        pop3: false,
        pop3s: false,
      },
    });
  });
  after(() => server.close());

  test('refuses a client that talks before the greeting with 554 5.5.1 and disconnects it', async () => {
    const r = await talk(server.ports.smtp, { early: 'EHLO bot.example\r\n' });
    assert.match(r.text, /^554 5\.5\.1 /, r.text);
    assert.ok(!/^220 /m.test(r.text), `no greeting for an early talker: ${r.text}`);
    assert.equal(r.closed, true);
  });

  test('greets a client that waits, after the pregreet wait, and then greets it at once', async () => {
    const first = await talk(server.ports.smtp);
    assert.match(first.text, /^220 mx\.example\.com ESMTP/);
    assert.ok(first.firstByteMs >= WAIT_MS - 20, `greeted after ${first.firstByteMs} ms`);
    // postscreen_greet_ttl: a client that passed is not made to wait again.
    const again = await talk(server.ports.smtp, { ms: 300 });
    assert.match(again.text, /^220 /);
    assert.ok(again.firstByteMs < WAIT_MS / 2, `greeted after ${again.firstByteMs} ms`);
  });

  test('submission (587) and smtps (465) greet at once', async () => {
    for (const [port, tls] of [
      [server.ports.submission, false],
      [server.ports.smtps, true],
    ] as const) {
      const r = await talk(port, { ms: 300, tls });
      assert.match(r.text, /^220 /, `port ${port}: ${r.text}`);
      assert.ok(r.firstByteMs < WAIT_MS / 2, `port ${port} greeted after ${r.firstByteMs} ms`);
    }
  });
});

describe('pregreet test skipped for trusted clients', () => {
  let server: TestServer;
  before(async () => {
    server = await startSmtpTestServer({
      listeners: {
        smtp: { port: 0, host: '127.0.0.1', pregreet: { waitMs: 2000, ttlHours: 0 } },
        submission: false,
        smtps: false,
        imap: false,
        imaps: false,
        pop3: false,
        pop3s: false,
      },
    });
  });
  after(() => server.close());

  for (const key of ['smtp.trustedNetworks', 'smtp.relayFrom'] as const) {
    test(`a client in ${key} is greeted at once on port 25`, async () => {
      server.core.settings.set(key, ['127.0.0.0/8']);
      try {
        const r = await talk(server.ports.smtp, { ms: 500 });
        assert.match(r.text, /^220 /, r.text);
        assert.ok(r.firstByteMs < 500, `greeted after ${r.firstByteMs} ms`);
      } finally {
        server.core.settings.set(key, []);
      }
    });
  }

  test('with ttlHours 0 an untrusted client waits on every connection', async () => {
    const r = await talk(server.ports.smtp, { ms: 800 });
    assert.equal(r.text, '', `nothing before the wait is over: ${r.text}`);
  });
});
