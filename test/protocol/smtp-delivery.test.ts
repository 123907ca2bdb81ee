/**
 * From the SMTP reply to the mailbox or the remote server (issue 3 §4–§7): the 250 waits for the spool, local
 * delivery adds Return-Path / Delivered-To / Received, distribution lists, domain and global Bcc, forwards, quota
 * bounces, loops, the disclaimer, the outgoing HELO name, and one structured log line per event.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../../src/config/load.ts';
import { createLogger } from '../../src/lib/logger.ts';
import { startServer } from '../../src/server.ts';
import { ROOT } from '../helpers/cli.ts';
import { sendRaw } from '../helpers/raw-smtp.ts';
import type { TestServer } from '../helpers/server.ts';
import type { SmtpSink } from '../helpers/smtp-sink.ts';
import {
  JOHN,
  TLS_FILES,
  logCapture,
  message,
  queueIdOf,
  queued,
  rawClient,
  sleep,
  startWithRemote,
  submissionClient,
  transport,
  waitForEmptyQueue,
} from './smtp-env.ts';

let server: TestServer;
let sink: SmtpSink;
let close: () => Promise<void>;

before(async () => {
  ({ server, sink, close } = await startWithRemote({
    'remote.example': { MX: [{ exchange: 'mx.remote.example', priority: 10 }] },
    'mx.remote.example': { A: ['127.0.0.1'] },
  }));
});

after(() => close());

let seq = 0;
/** A subject no other test uses, to find the message again. */
const unique = (what: string) => `${what} #${++seq}`;

/** Messages of `login` whose Subject is `subject`. */
function withSubject(login: string, subject: string): string[] {
  return server.inbox(login).filter((m) => m.includes(`\r\nSubject: ${subject}\r\n`));
}

/** Sends from outside on port 25 and waits until the queue is empty again. */
async function fromOutside(to: string[], subject: string, opts: { from?: string; headers?: Record<string, string>; body?: string } = {}) {
  const info = await transport(server, 'smtp').sendMail({
    envelope: { from: opts.from ?? 'sender@outside.example', to },
    raw: message(subject, opts.body, opts.headers),
  });
  await waitForEmptyQueue(server);
  return info;
}

/** Sends as john.smith on 587 and waits until the queue is empty again. */
async function fromJohn(to: string[], subject: string, extra: { text?: string; raw?: string; headers?: Record<string, string> } = {}) {
  const t = transport(server, 'submission', JOHN);
  const info = extra.raw
    ? await t.sendMail({ envelope: { from: 'john@example.com', to }, raw: extra.raw })
    : await t.sendMail({ from: 'john@example.com', to, subject, text: extra.text ?? 'Hello.', headers: extra.headers });
  await waitForEmptyQueue(server);
  return info;
}

describe('the 250 and the queue', () => {
  test('answers 250 only once the spool has the message, naming its queue id', async (t) => {
    const spool = server.spool;
    const original = spool.enqueue.bind(spool);
    let committedAt = 0;
    spool.enqueue = async (...args: Parameters<typeof spool.enqueue>) => {
      await sleep(300);
      const id = await original(...args);
      committedAt = Date.now();
      return id;
    };
    t.after(() => {
      spool.enqueue = original;
    });
    const c = await rawClient(server, 'smtp', 'mta.outside.example');
    try {
      const r = await sendRaw(c, 'sender@outside.example', ['john@example.com'], message('slow disk'));
      const repliedAt = Date.now();
      assert.equal(r.code, 250, r.raw);
      assert.ok(committedAt > 0 && repliedAt >= committedAt, 'the reply came after the commit');
      const id = queueIdOf(r.text);
      const [mail] = (await server.waitForMail('john.smith')).filter((m) => m.includes('Subject: slow disk'));
      assert.match(mail, new RegExp(` id ${id}\\b`));
    } finally {
      c.close();
    }
  });

  test('a message is delivered once when the queue scan finds it before the "enqueued" event', async (t) => {
    // The spool renames the files into queue/, fsyncs the directory, then emits "enqueued"; the scheduler's
    // periodic scan (every 0.2 s here) can see the files in between. A slow fsync makes that window wide.
    // A slow disk under the store too, so that the event arrives while the first attempt is still delivering.
    const { spool, store } = server;
    const emit = spool.emit;
    // Counted, so the test waits for the late events and the attempts they start instead of sleeping past them.
    let pending = 0;
    spool.emit = ((...args: unknown[]) => {
      pending++;
      setTimeout(() => {
        Reflect.apply(emit, spool, args);
        pending--;
      }, 300);
      return true;
    }) as typeof spool.emit;
    const deliver = store.deliver.bind(store);
    store.deliver = async (...args: Parameters<typeof store.deliver>) => {
      pending++;
      try {
        await sleep(400);
        return await deliver(...args);
      } finally {
        pending--;
      }
    };
    t.after(() => {
      spool.emit = emit;
      store.deliver = deliver;
    });
    const subject = unique('late event');
    await fromOutside(['mario@example.com'], subject);
    await waitForEmptyQueue(server);
    // Past the late event and any attempt it starts: a second copy could only come from those.
    for (const deadline = Date.now() + 20_000; pending > 0; await sleep(25)) {
      assert.ok(Date.now() < deadline, `${pending} late event(s) or delivery attempt(s) still pending after 20 s`);
    }
    assert.equal(withSubject('mario.rossi', subject).length, 1);
  });

  test('a full disk is 452 4.3.1 and another spool failure 451 4.3.0, never 250', async (t) => {
    const spool = server.spool;
    const original = spool.enqueue.bind(spool);
    let failWith: NodeJS.ErrnoException = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    spool.enqueue = async () => {
      throw failWith;
    };
    t.after(() => {
      spool.enqueue = original;
    });
    const c = await rawClient(server, 'smtp', 'mta.outside.example');
    try {
      const full = await sendRaw(c, 'sender@outside.example', ['john@example.com'], message('disk full'));
      assert.equal(full.code, 452, full.raw);
      assert.match(full.text, /^4\.3\.1 /);
      failWith = Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' });
      const io = await sendRaw(c, 'sender@outside.example', ['john@example.com'], message('disk broken'));
      assert.equal(io.code, 451, io.raw);
      assert.doesNotMatch(io.text, /EIO|fsync/, 'details go to the log, not to the client');
    } finally {
      c.close();
    }
    assert.equal((await queued(server)).length, 0);
  });
});

describe('local delivery', () => {
  test('adds Return-Path, Delivered-To and our Received field', async () => {
    const subject = unique('headers');
    const info = await fromOutside(['laura.verdi@example.com', 'j.smith@example.com'], subject);
    const id = queueIdOf(info.response);
    const [laura] = withSubject('laura.verdi', subject);
    const [john] = withSubject('john.smith', subject);
    assert.match(laura, /^Return-Path: <sender@outside\.example>\r\nDelivered-To: laura\.verdi@example\.com\r\nReceived: from client\.example\.net \(unknown \[127\.0\.0\.1\]\)\r\n/);
    assert.match(laura, new RegExp(`\\tby mx\\.example\\.com \\(postern\\) with ESMTPS id ${id};\\r\\n`), 'no "for" with two recipients');
    assert.match(john, /^Delivered-To: j\.smith@example\.com\r$/m, 'Delivered-To is the address used');
  });

  test('a distribution list reaches each enabled member once (sales@: john.smith, laura.verdi, mario.rossi)', async () => {
    const subject = unique('to sales');
    // john.smith is also named directly: still one copy.
    await fromOutside(['sales@example.com', 'john@example.com'], subject);
    for (const login of ['john.smith', 'laura.verdi', 'mario.rossi']) {
      assert.equal(withSubject(login, subject).length, 1, login);
    }
    assert.equal(withSubject('old.employee', subject).length, 0, 'disabled member skipped');
    assert.equal(withSubject('paolo.neri', subject).length, 0);
  });

  test('a domain Bcc gets a hidden copy of mail to and from the domain', async (t) => {
    server.core.settings.updateDomain('example.com', { bcc: 'admin@example.com' });
    t.after(() => server.core.settings.updateDomain('example.com', { bcc: null }));
    const incoming = unique('domain bcc in');
    await fromOutside(['carla@example.com'], incoming);
    assert.equal(withSubject('Carla.Fermi', incoming).length, 1);
    const [copy] = withSubject('admin', incoming);
    assert.ok(copy, 'admin has a copy');
    assert.doesNotMatch(withSubject('Carla.Fermi', incoming)[0], /admin@example\.com/, 'the recipient does not see the Bcc');
    assert.doesNotMatch(copy, /for <admin@example\.com>/);
  });

  test('queue.alwaysBcc gets a hidden copy of every message, incoming and outgoing', async (t) => {
    server.core.settings.set('queue.alwaysBcc', 'it.tech@example.com');
    t.after(() => server.core.settings.set('queue.alwaysBcc', null));
    const incoming = unique('always bcc in');
    await fromOutside(['carla@example.com'], incoming);
    assert.equal(withSubject('it.tech', incoming).length, 1);
    const outgoing = unique('always bcc out');
    const before = sink.messages.length;
    await fromJohn(['dave@remote.example'], outgoing);
    assert.equal(sink.messages.length, before + 1);
    assert.deepEqual(sink.messages.at(-1)!.to, ['dave@remote.example'], 'the Bcc address is not sent to the remote server');
    assert.equal(withSubject('it.tech', outgoing).length, 1);
  });

  test('a forward with keepCopy goes to the remote address and keeps a local copy; without, no copy', async (t) => {
    const { settings } = server.core;
    settings.setUser('laura.verdi', { forward: 'laura@remote.example', keepCopy: true });
    t.after(() => settings.setUser('laura.verdi', { forward: null }));
    const kept = unique('forward kept');
    const before = sink.messages.length;
    await fromOutside(['laura.verdi@example.com'], kept);
    assert.equal(sink.messages.length, before + 1);
    const fwd = sink.messages.at(-1)!;
    assert.deepEqual(fwd.to, ['laura@remote.example']);
    assert.match(fwd.data.toString('latin1'), new RegExp(`Subject: ${kept}`));
    assert.equal(withSubject('laura.verdi', kept).length, 1, 'local copy kept');

    settings.setUser('laura.verdi', { forward: 'laura@remote.example', keepCopy: false });
    const moved = unique('forward only');
    await fromOutside(['laura.verdi@example.com'], moved);
    assert.equal(sink.messages.length, before + 2);
    assert.equal(withSubject('laura.verdi', moved).length, 0, 'no local copy');
  });

  test('a mailbox over quota bounces with a DSN to the sender', async (t) => {
    server.core.settings.setUser('paolo.neri', { quotaMB: 1 });
    t.after(() => server.core.settings.setUser('paolo.neri', { quotaMB: null }));
    const subject = unique('two megabytes');
    const info = await fromJohn(['paolo.neri@example.com'], subject, { text: `${'y'.repeat(76)}\r\n`.repeat(27000) });
    assert.match(info.response, /^250 /, 'accepted: the quota is a delivery matter');
    assert.equal(withSubject('paolo.neri', subject).length, 0);
    const dsn = (await server.waitForMail('john.smith')).find((m) => m.includes('report-type=delivery-status') && m.includes(subject));
    assert.ok(dsn, 'john.smith got a DSN');
    assert.match(dsn, /^Return-Path: <>\r$/m);
    assert.match(dsn, /Final-Recipient: rfc822; ?paolo\.neri@example\.com/i);
    assert.match(dsn, /Status: 5\.2\.2/);
  });
});

describe('mail loops', () => {
  test('a message already delivered to the address (Delivered-To) bounces', async () => {
    const subject = unique('loop via Delivered-To');
    const raw =
      'From: john@example.com\r\nTo: carla@example.com\r\nDelivered-To: carla@example.com\r\n' +
      `Subject: ${subject}\r\nMessage-ID: <loop.${seq}@example.com>\r\n\r\nround and round\r\n`;
    await fromJohn(['carla@example.com'], subject, { raw });
    assert.equal(withSubject('Carla.Fermi', subject).length, 0);
    const dsn = server.inbox('john.smith').find((m) => m.includes('report-type=delivery-status') && m.includes(subject));
    assert.ok(dsn, 'bounced to the sender');
    assert.match(dsn, /Status: 5\.4\.6/);
  });

  test('a message with 50 Received fields is refused at DATA with 554 5.4.6, and one that would reach 50 with ours too', async () => {
    const received = (n: number) =>
      Array.from({ length: n }, (_, i) => `Received: from hop${i}.example by hop${i + 1}.example; Mon, 1 Jan 2024 00:00:00 +0000\r\n`).join('');
    const c = await rawClient(server, 'smtp', 'mta.outside.example');
    try {
      for (const n of [50, 60, 49]) {
        const r = await sendRaw(c, 'sender@outside.example', ['john@example.com'], received(n) + message(`hops ${n}`));
        assert.equal(r.code, 554, `${n}: ${r.raw}`);
        assert.match(r.text, /^5\.4\.6 /);
      }
      const ok = await sendRaw(c, 'sender@outside.example', ['john@example.com'], received(48) + message('hops 48'));
      assert.equal(ok.code, 250, ok.raw);
    } finally {
      c.close();
    }
    await waitForEmptyQueue(server);
    assert.equal(server.inbox('john.smith').filter((m) => /Subject: hops \d+/.test(m)).length, 1);
    assert.ok(!server.inbox('john.smith').some((m) => m.includes('report-type=delivery-status') && m.includes('hops 48')));
  });
});

describe('the disclaimer', () => {
  test('is attached to mail our users send to remote recipients, the original body untouched', async (t) => {
    server.core.settings.updateDomain('example.com', { disclaimer: '**Confidential**' });
    t.after(() => server.core.settings.updateDomain('example.com', { disclaimer: null }));
    const subject = unique('with disclaimer');
    const body = 'Dear Bob,\r\n\r\nthe figures: =3D not decoded, trailing space \r\n--not-a-boundary\r\n\r\nJohn\r\n';
    const raw =
      `From: John Smith <john@example.com>\r\nTo: bob@remote.example\r\nSubject: ${subject}\r\nMessage-ID: <d.${seq}@example.com>\r\n` +
      `MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n${body}`;
    const before = sink.messages.length;
    await fromJohn(['bob@remote.example'], subject, { raw });
    assert.equal(sink.messages.length, before + 1);
    const out = sink.messages.at(-1)!.data.toString('latin1');
    const boundary = /^Content-Type: multipart\/mixed; boundary="([^"]+)"\r$/m.exec(out)?.[1];
    assert.ok(boundary, `multipart/mixed at the top:\n${out.slice(0, 800)}`);
    assert.match(out, /^X-Postern-Disclaimer: yes\r$/m);
    const firstPart = out.split(`--${boundary}\r\n`)[1];
    assert.equal(
      firstPart,
      `Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n${body}\r\n`,
      'the original part, byte for byte (its CRLF before the boundary belongs to the boundary)',
    );
    assert.match(out, /\*\*Confidential\*\*/);
    assert.match(out, /<strong>Confidential<\/strong>/);
  });

  test('is not attached to mail from outside (port 25, unauthenticated), even with a sender of the domain', async (t) => {
    server.core.settings.updateDomain('example.com', { disclaimer: '**Confidential**' });
    t.after(() => server.core.settings.updateDomain('example.com', { disclaimer: null }));
    const subject = unique('no disclaimer');
    await fromOutside(['john@example.com'], subject, { from: 'laura.verdi@example.com' });
    const [mail] = withSubject('john.smith', subject);
    assert.ok(mail);
    assert.doesNotMatch(mail, /X-Postern-Disclaimer|Confidential|multipart\/mixed/);
  });
});

describe('outgoing HELO', () => {
  test('is the hostname, or smtp.heloHost when set', async (t) => {
    await fromJohn(['eve@remote.example'], unique('helo default'));
    assert.equal(sink.messages.at(-1)!.helo, 'mx.example.com');
    server.core.settings.set('smtp.heloHost', 'public.example.com');
    t.after(() => server.core.settings.set('smtp.heloHost', null));
    await fromJohn(['eve@remote.example'], unique('helo override'));
    assert.equal(sink.messages.at(-1)!.helo, 'public.example.com');
    const data = sink.messages.at(-1)!.data.toString('latin1');
    assert.doesNotMatch(data, /[^\r]\n|\r(?!\n)/, 'CRLF only on the way out');
  });
});

describe('logs', () => {
  test('one structured line per event, with the component of the listener and the queue id', async () => {
    const { stream, lines } = logCapture();
    const dataDir = mkdtempSync(join(tmpdir(), 'postern-log-'));
    const config = parseConfig(
      {
        hostname: 'mx.example.com',
        dataDir,
        tls: TLS_FILES,
        directory: { type: 'ldif', file: join(ROOT, 'fixtures/ad/corp.ldif') },
        listeners: { smtp: { port: 0, host: '127.0.0.1' }, submission: { port: 0, host: '127.0.0.1' }, smtps: false, imap: false, imaps: false, pop3: false, pop3s: false, admin: false, http: false, https: false, managesieve: false },
        auth: { failureDelayMs: 0 },
        queue: { retryMinSeconds: 0.2, retryMaxSeconds: 1, scanIntervalSeconds: 0.2 },
      },
      '(test)',
      ROOT,
    );
    const logged = await startServer(config, createLogger('info', stream));
    try {
      logged.core.settings.addDomain({ name: 'example.com', type: 'local' });
      logged.core.settings.setMany({ 'filter.antivirus': false, 'filter.spam': false });
      const env = { ports: logged.ports } as unknown as TestServer;
      const c25 = await rawClient(env, 'smtp', 'mta.outside.example');
      const r25 = await sendRaw(c25, 'sender@outside.example', ['john@example.com'], message('logged on 25'));
      assert.equal((await c25.command('RCPT TO:<nobody@example.com>')).code, 503);
      assert.equal((await c25.command('MAIL FROM:<sender@outside.example>')).code, 250);
      assert.equal((await c25.command('RCPT TO:<nobody@example.com>')).code, 550);
      c25.close();
      const c587 = await submissionClient(env);
      const r587 = await sendRaw(c587, 'john@example.com', ['laura.verdi@example.com'], message('logged on 587'));
      c587.close();
      const id25 = queueIdOf(r25.text);
      const id587 = queueIdOf(r587.text);
      for (const deadline = Date.now() + 5000; Date.now() < deadline; await sleep(25)) {
        if (lines.some((l) => l.component === 'delivery' && l.queueId === id25)) break;
      }

      const queued25 = lines.find((l) => l.event === 'queued' && l.queueId === id25);
      assert.ok(queued25, 'a "queued" line for the port 25 message');
      assert.equal(queued25.component, 'transfer/smtpd');
      assert.equal(queued25.client, '127.0.0.1');
      assert.equal(queued25.from, 'sender@outside.example');
      const queued587 = lines.find((l) => l.event === 'queued' && l.queueId === id587);
      assert.ok(queued587);
      assert.equal(queued587.component, 'submission/smtpd');
      assert.equal(queued587.user, 'john.smith');
      const reject = lines.find((l) => l.event === 'reject' && l.to === 'nobody@example.com');
      assert.ok(reject);
      assert.equal(reject.component, 'transfer/smtpd');
      assert.ok(lines.some((l) => l.component === 'submission/smtpd' && l.event === 'starttls'));
      assert.ok(lines.some((l) => l.component === 'delivery' && l.queueId === id25), 'delivery logs the same queue id');
      for (const l of lines) assert.equal(typeof l.msg, 'string');
    } finally {
      await logged.close();
    }
  });
});
