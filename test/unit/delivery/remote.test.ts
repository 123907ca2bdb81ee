import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { createLogger } from '../../../src/lib/logger.ts';
import { MxError, MxResolver } from '../../../src/delivery/mx.ts';
import { RemoteDelivery, flattenReply, statusOf, type RemoteJob } from '../../../src/delivery/remote.ts';
import { openSettings, type Settings } from '../../../src/settings/store.ts';
import type { DeliveryResult } from '../../../src/queue/types.ts';
import { startDnsServer, type DnsTable, type TestDnsServer } from '../../helpers/dns-server.ts';
import { startSmtpSink, TEST_TLS, type SinkOptions, type SmtpSink } from '../../helpers/smtp-sink.ts';

const MESSAGE = Buffer.from(
  'From: alice@corp.example\r\nTo: bob@remote.test\r\nSubject: hello\r\nMessage-ID: <1@corp.example>\r\n\r\nHello Bob.\r\n',
);

interface Env {
  dns: TestDnsServer;
  settings: Settings;
  logs: Record<string, unknown>[];
  delivery(opts?: { remotePort?: number; connectTimeoutSeconds?: number; smarthostTls?: { ca: Buffer } }): RemoteDelivery;
  sink(opts?: SinkOptions): Promise<SmtpSink>;
}

async function setup(t: TestContext, table: DnsTable = {}): Promise<Env> {
  const dir = mkdtempSync(join(tmpdir(), 'postern-remote-'));
  const settings = openSettings(dir);
  const dns = await startDnsServer(table);
  const sinks: SmtpSink[] = [];
  const logs: Record<string, unknown>[] = [];
  const out = new Writable({
    write(chunk, _enc, cb) {
      for (const line of String(chunk).split('\n')) if (line.trim()) logs.push(JSON.parse(line));
      cb();
    },
  });
  const log = createLogger('info', out);
  t.after(async () => {
    await Promise.all(sinks.map((s) => s.close()));
    await dns.close();
    settings.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return {
    dns,
    settings,
    logs,
    delivery: (o = {}) =>
      new RemoteDelivery({
        settings,
        hostname: 'mail.corp.example',
        config: {
          delivery: { remotePort: o.remotePort ?? sinks[0]?.port ?? 25, connectTimeoutSeconds: o.connectTimeoutSeconds ?? 5, hopLimit: 50 },
          dns: { servers: [dns.address], timeoutMs: 500 },
        },
        log,
        mx: new MxResolver({ servers: [dns.address], timeoutMs: 500, tries: 1 }),
        ...(o.smarthostTls ? { smarthostTls: o.smarthostTls } : {}),
      }),
    sink: async (opts = {}) => {
      const s = await startSmtpSink(opts);
      sinks.push(s);
      return s;
    },
  };
}

function job(recipients: string[], extra: Partial<RemoteJob> = {}): RemoteJob {
  return { queueId: 'Q1', from: 'alice@corp.example', recipients, message: MESSAGE, ...extra };
}

function byRcpt(results: DeliveryResult[]): Record<string, DeliveryResult> {
  return Object.fromEntries(results.map((r) => [r.recipient, r]));
}

function failure(r: DeliveryResult) {
  assert.notEqual(r.outcome, 'delivered', `expected a failure for ${r.recipient}, got ${JSON.stringify(r)}`);
  return r as Extract<DeliveryResult, { outcome: 'tempfail' | 'bounce' }>;
}

// ---- reply helpers ----------------------------------------------------------------------------------------------

test('flattenReply and statusOf read multi-line and enhanced replies', () => {
  assert.equal(flattenReply('550-5.1.1 first\n550 5.1.1 second'), '550-5.1.1 first 5.1.1 second');
  assert.equal(statusOf(550, '550 5.1.1 no such user'), '5.1.1');
  assert.equal(statusOf(450, '450 4.2.1 busy'), '4.2.1');
  assert.equal(statusOf(554, '554 no status here'), '5.0.0');
  assert.equal(statusOf(451, '451 5.1.1 class mismatch'), '4.0.0');
});

// ---- MX lookup --------------------------------------------------------------------------------------------------

test('MX: hosts in preference order, equal preferences all present, each with A then AAAA', async (t) => {
  const env = await setup(t, {
    'remote.test': {
      MX: [
        { exchange: 'mx30.remote.test', priority: 30 },
        { exchange: 'mx10a.remote.test', priority: 10 },
        { exchange: 'mx20.remote.test', priority: 20 },
        { exchange: 'mx10b.remote.test', priority: 10 },
      ],
    },
    'mx10a.remote.test': { A: ['192.0.2.1'], AAAA: ['2001:db8::1'] },
    'mx10b.remote.test': { A: ['192.0.2.2'] },
    'mx20.remote.test': { A: ['192.0.2.3'] },
    'mx30.remote.test': { AAAA: ['2001:db8::3'] },
  });
  const mx = new MxResolver({ servers: [env.dns.address], timeoutMs: 500 });
  const hosts = await mx.hostsFor('Remote.Test.');
  assert.deepEqual(
    hosts.map((h) => h.preference),
    [10, 10, 20, 30],
  );
  assert.deepEqual(new Set(hosts.slice(0, 2).map((h) => h.host)), new Set(['mx10a.remote.test', 'mx10b.remote.test']));
  assert.deepEqual(hosts[2], { host: 'mx20.remote.test', preference: 20, addresses: ['192.0.2.3'] });
  assert.deepEqual(hosts.find((h) => h.host === 'mx10a.remote.test')!.addresses, ['192.0.2.1', '2001:db8::1']);
  assert.deepEqual(hosts[3].addresses, ['2001:db8::3']);

  // Equal preferences are shuffled: over many lookups both orders show up.
  const firsts = new Set<string>();
  for (let i = 0; i < 30 && firsts.size < 2; i++) firsts.add((await mx.hostsFor('remote.test'))[0].host);
  assert.equal(firsts.size, 2);
});

test('MX: no MX record → the domain itself (implicit MX); address literals need no lookup', async (t) => {
  const env = await setup(t, { 'plain.test': { A: ['192.0.2.9'] } });
  const mx = new MxResolver({ servers: [env.dns.address], timeoutMs: 500 });
  assert.deepEqual(await mx.hostsFor('plain.test'), [{ host: 'plain.test', preference: 0, addresses: ['192.0.2.9'], implicit: true }]);
  assert.deepEqual(await mx.hostsFor('[192.0.2.7]'), [{ host: '192.0.2.7', preference: 0, addresses: ['192.0.2.7'] }]);
  assert.deepEqual((await mx.hostsFor('[IPv6:2001:DB8::7]'))[0].addresses, ['2001:db8::7']);
});

test('MX: null MX and NXDOMAIN are permanent, SERVFAIL and timeouts temporary, we are never our own relay', async (t) => {
  const env = await setup(t, {
    'nullmx.test': { MX: [{ exchange: '.', priority: 0 }] },
    'broken.test': { error: 'SERVFAIL' },
    'slow.test': { error: 'timeout' },
    'nohost.test': { MX: [{ exchange: 'missing.nohost.test', priority: 10 }] },
    'loop.test': { MX: [{ exchange: 'mail.corp.example', priority: 10 }, { exchange: 'backup.loop.test', priority: 20 }] },
    'backup.loop.test': { A: ['192.0.2.5'] },
    'lower.test': { MX: [{ exchange: 'primary.lower.test', priority: 5 }, { exchange: 'mail.corp.example', priority: 10 }] },
    'primary.lower.test': { A: ['192.0.2.6'] },
  });
  const mx = new MxResolver({ servers: [env.dns.address], timeoutMs: 300, tries: 1 });
  const err = async (domain: string, self?: string[]) => {
    try {
      await mx.hostsFor(domain, { self });
    } catch (e) {
      assert.ok(e instanceof MxError, String(e));
      return { temporary: e.temporary, status: e.status };
    }
    assert.fail(`${domain} resolved`);
  };
  assert.deepEqual(await err('nullmx.test'), { temporary: false, status: '5.1.10' });
  assert.deepEqual(await err('nx.test'), { temporary: false, status: '5.1.2' });
  assert.deepEqual(await err('broken.test'), { temporary: true, status: '4.4.3' });
  assert.deepEqual(await err('slow.test'), { temporary: true, status: '4.4.3' });
  assert.deepEqual(await err('nohost.test'), { temporary: true, status: '4.4.3' });
  assert.deepEqual(await err('loop.test', ['mail.corp.example']), { temporary: false, status: '5.4.6' });
  assert.deepEqual(
    (await mx.hostsFor('lower.test', { self: ['mail.corp.example'] })).map((h) => h.host),
    ['primary.lower.test'],
  );
});

test('send: NXDOMAIN and null MX bounce, SERVFAIL defers, without connecting anywhere', async (t) => {
  const env = await setup(t, { 'nullmx.test': { MX: [{ exchange: '.', priority: 0 }] }, 'broken.test': { error: 'SERVFAIL' } });
  const sink = await env.sink();
  const r = byRcpt(await env.delivery().send(job(['a@nx.test', 'b@nullmx.test', 'c@broken.test'])));
  assert.deepEqual(
    [r['a@nx.test'], r['b@nullmx.test'], r['c@broken.test']].map((x) => [x.outcome, failure(x).status, failure(x).code]),
    [
      ['bounce', '5.1.2', 550],
      ['bounce', '5.1.10', 550],
      ['tempfail', '4.4.3', 451],
    ],
  );
  assert.equal(sink.connections, 0);
  assert.ok(env.logs.some((l) => l.component === 'relay/smtp' && l.queueId === 'Q1' && l.result === 'bounced'));
});

// ---- delivery to MX hosts ---------------------------------------------------------------------------------------

test('send: per-recipient results from the RCPT replies; only the accepted recipients get the message', async (t) => {
  const env = await setup(t, {
    'remote.test': { MX: [{ exchange: 'mx.remote.test', priority: 10 }] },
    'mx.remote.test': { A: ['127.0.0.1'] },
  });
  const sink = await env.sink();
  const results = await env.delivery().send(job(['ok@remote.test', 'temp1@remote.test', 'perm1@remote.test', 'ok2@remote.test']));
  assert.deepEqual(
    results.map((r) => r.recipient),
    ['ok@remote.test', 'temp1@remote.test', 'perm1@remote.test', 'ok2@remote.test'],
  );
  const r = byRcpt(results);
  assert.equal(r['ok@remote.test'].outcome, 'delivered');
  assert.equal(r['ok@remote.test'].remoteMta, 'mx.remote.test');
  assert.match(r['ok@remote.test'].detail ?? '', /^250 /);
  assert.deepEqual(r['temp1@remote.test'], {
    recipient: 'temp1@remote.test',
    outcome: 'tempfail',
    code: 450,
    status: '4.2.1',
    detail: '450 4.2.1 mailbox busy, try later',
    remoteMta: 'mx.remote.test',
  });
  const perm = failure(r['perm1@remote.test']);
  assert.deepEqual([perm.outcome, perm.code, perm.status, perm.remoteMta], ['bounce', 550, '5.1.1', 'mx.remote.test']);
  assert.equal(sink.messages.length, 1);
  assert.deepEqual(sink.messages[0].to, ['ok@remote.test', 'ok2@remote.test']);
  assert.equal(sink.messages[0].from, 'alice@corp.example');
  assert.deepEqual(sink.messages[0].data, MESSAGE);
  assert.equal(sink.messages[0].helo, 'mail.corp.example');
  assert.equal(sink.messages[0].secure, false);

  const line = env.logs.find((l) => l.component === 'relay/smtp' && l.relay === `mx.remote.test[127.0.0.1]:${sink.port}`);
  assert.ok(line, JSON.stringify(env.logs));
  assert.equal(line.queueId, 'Q1');
  assert.equal(line.result, 'mixed');
  assert.deepEqual(line.to, ['ok@remote.test', 'temp1@remote.test', 'perm1@remote.test', 'ok2@remote.test']);
});

test('send: the DATA-stage reply applies to every accepted recipient', async (t) => {
  const env = await setup(t, {
    'remote.test': { MX: [{ exchange: 'mx.remote.test', priority: 10 }] },
    'mx.remote.test': { A: ['127.0.0.1'] },
  });
  await env.sink();
  const d = env.delivery();
  const temp = byRcpt(await d.send(job(['datatemp@remote.test', 'ok@remote.test', 'perm@remote.test'])));
  assert.deepEqual(
    Object.values(temp).map((x) => [x.recipient, x.outcome, failure(x).code, failure(x).status]),
    [
      ['datatemp@remote.test', 'tempfail', 451, '4.3.0'],
      ['ok@remote.test', 'tempfail', 451, '4.3.0'],
      ['perm@remote.test', 'bounce', 550, '5.1.1'],
    ],
  );
  const perm = await d.send(job(['dataperm@remote.test', 'ok@remote.test']));
  assert.deepEqual(
    perm.map((x) => [x.outcome, failure(x).code, failure(x).status]),
    [
      ['bounce', 554, '5.6.0'],
      ['bounce', 554, '5.6.0'],
    ],
  );
});

test('send: MAIL FROM refused applies to all; the null sender is sent as <>', async (t) => {
  const env = await setup(t, {
    'remote.test': { MX: [{ exchange: 'mx.remote.test', priority: 10 }] },
    'mx.remote.test': { A: ['127.0.0.1'] },
  });
  const sink = await env.sink({ mailReply: (a) => (a.startsWith('spammer') ? { code: 553, message: '5.7.1 sender refused' } : null) });
  const refused = await env.delivery().send(job(['a@remote.test', 'b@remote.test'], { from: 'spammer@corp.example' }));
  assert.deepEqual(
    refused.map((x) => [x.outcome, failure(x).status]),
    [
      ['bounce', '5.7.1'],
      ['bounce', '5.7.1'],
    ],
  );
  const bounceMsg = await env.delivery().send(job(['a@remote.test'], { from: '' }));
  assert.equal(bounceMsg[0].outcome, 'delivered');
  assert.equal(sink.messages.at(-1)!.from, '');
});

test('send: a dead first MX, then a live second one', async (t) => {
  const env = await setup(t, {
    'remote.test': {
      MX: [
        { exchange: 'dead.remote.test', priority: 10 },
        { exchange: 'live.remote.test', priority: 20 },
      ],
    },
    // Nothing listens on 127.0.0.2: connection refused.
    'dead.remote.test': { A: ['127.0.0.2'] },
    'live.remote.test': { A: ['127.0.0.1'] },
  });
  const sink = await env.sink();
  const r = await env.delivery().send(job(['bob@remote.test']));
  assert.equal(r[0].outcome, 'delivered', JSON.stringify(r));
  assert.equal(r[0].remoteMta, 'live.remote.test');
  assert.equal(sink.messages.length, 1);
  const attempts = env.logs.filter((l) => l.component === 'relay/smtp' && l.queueId === 'Q1');
  assert.deepEqual(
    attempts.map((l) => [l.relay, l.result]),
    [
      [`dead.remote.test[127.0.0.2]:${sink.port}`, 'deferred'],
      [`live.remote.test[127.0.0.1]:${sink.port}`, 'sent'],
    ],
  );
});

test('send: a 4xx greeting or a 4xx RCPT moves on to the next MX; 5xx is final', async (t) => {
  const env = await setup(t, {
    'remote.test': {
      MX: [
        { exchange: 'busy.remote.test', priority: 10 },
        { exchange: 'picky.remote.test', priority: 20 },
        { exchange: 'good.remote.test', priority: 30 },
      ],
    },
    'busy.remote.test': { A: ['127.0.0.1'] },
    'picky.remote.test': { A: ['127.0.0.3'] },
    'good.remote.test': { A: ['127.0.0.4'] },
  });
  const busy = await env.sink({ greeting: { code: 421, message: '4.3.2 too busy' } });
  const picky = await env.sink({
    host: '127.0.0.3',
    port: busy.port,
    rcptReply: (a) => (a.startsWith('greylisted') ? { code: 451, message: '4.7.1 greylisted' } : null),
  });
  const good = await env.sink({ host: '127.0.0.4', port: busy.port });
  const r = byRcpt(await env.delivery().send(job(['greylisted@remote.test', 'perm@remote.test', 'ok@remote.test'])));
  assert.equal(busy.connections, 1);
  assert.equal(r['ok@remote.test'].remoteMta, 'picky.remote.test');
  assert.equal(r['perm@remote.test'].outcome, 'bounce');
  assert.equal(r['perm@remote.test'].remoteMta, 'picky.remote.test');
  assert.equal(r['greylisted@remote.test'].outcome, 'delivered');
  assert.equal(r['greylisted@remote.test'].remoteMta, 'good.remote.test');
  assert.deepEqual(picky.messages.map((m) => m.to), [['ok@remote.test']]);
  assert.deepEqual(good.messages.map((m) => m.to), [['greylisted@remote.test']]);
});

test('send: a 5xx greeting from the only host defers (the host, not the recipient, is the problem)', async (t) => {
  const env = await setup(t, {
    'remote.test': { MX: [{ exchange: 'mx.remote.test', priority: 10 }] },
    'mx.remote.test': { A: ['127.0.0.1'] },
  });
  await env.sink({ greeting: { code: 554, message: '5.7.1 no service for you' } });
  const [r] = await env.delivery().send(job(['bob@remote.test']));
  const f = failure(r);
  assert.deepEqual([f.outcome, f.code, f.status], ['tempfail', 451, '4.7.1']);
  assert.match(f.detail, /refused to talk to us: 554 5\.7\.1 no service/);
});

test('send: connection refused everywhere → tempfail 4.4.1 for every recipient', async (t) => {
  const env = await setup(t, {
    'remote.test': { MX: [{ exchange: 'mx.remote.test', priority: 10 }] },
    'other.test': { A: ['127.0.0.2'] },
    'mx.remote.test': { A: ['127.0.0.2'] },
  });
  const results = await env.delivery({ remotePort: 9 }).send(job(['a@remote.test', 'b@remote.test', 'c@other.test']));
  assert.equal(results.length, 3);
  for (const r of results) {
    const f = failure(r);
    assert.deepEqual([f.outcome, f.code, f.status], ['tempfail', 421, '4.4.1'], JSON.stringify(r));
    assert.match(f.detail, /^connect to .*\[127\.0\.0\.2\]:9: /);
  }
});

test('send: a server that accepts the connection but never greets → tempfail 4.4.2 after the timeout', async (t) => {
  const env = await setup(t, { 'mute.test': { A: ['127.0.0.1'] } });
  const { createServer } = await import('node:net');
  const sockets: import('node:net').Socket[] = [];
  const mute = createServer((s) => sockets.push(s));
  await new Promise<void>((resolve) => mute.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    for (const s of sockets) s.destroy();
    mute.close();
  });
  const port = (mute.address() as { port: number }).port;
  const [r] = await env.delivery({ remotePort: port, connectTimeoutSeconds: 0.3 }).send(job(['a@mute.test']));
  const f = failure(r);
  assert.deepEqual([f.outcome, f.status], ['tempfail', '4.4.2']);
});

test('send: recipients of several domains are grouped per domain, one transaction each', async (t) => {
  const env = await setup(t, {
    'one.test': { MX: [{ exchange: 'mx.one.test', priority: 10 }] },
    'mx.one.test': { A: ['127.0.0.1'] },
    'two.test': { A: ['127.0.0.1'] },
  });
  const sink = await env.sink();
  const r = await env.delivery().send(job(['a@one.test', 'x@two.test', 'b@ONE.test']));
  assert.deepEqual(
    r.map((x) => [x.recipient, x.outcome, x.remoteMta]),
    [
      ['a@one.test', 'delivered', 'mx.one.test'],
      ['x@two.test', 'delivered', 'two.test'],
      ['b@ONE.test', 'delivered', 'mx.one.test'],
    ],
  );
  assert.deepEqual(new Set(sink.messages.map((m) => m.to.join(','))), new Set(['a@one.test,b@ONE.test', 'x@two.test']));
});

test('send: EHLO name is smtp.heloHost when set', async (t) => {
  const env = await setup(t, { 'remote.test': { A: ['127.0.0.1'] } });
  const sink = await env.sink();
  env.settings.set('smtp.heloHost', 'out.corp.example');
  await env.delivery().send(job(['a@remote.test']));
  assert.equal(sink.messages[0].helo, 'out.corp.example');
});

// ---- TLS ----------------------------------------------------------------------------------------------------------

test('send: opportunistic STARTTLS is used when offered, without verifying the certificate', async (t) => {
  const env = await setup(t, {
    'remote.test': { MX: [{ exchange: 'mx.remote.test', priority: 10 }] },
    'mx.remote.test': { A: ['127.0.0.1'] },
  });
  const sink = await env.sink({ starttls: true });
  const [r] = await env.delivery().send(job(['bob@remote.test']));
  assert.equal(r.outcome, 'delivered', JSON.stringify(r));
  assert.equal(sink.messages[0].secure, true);
  assert.ok(env.logs.some((l) => l.component === 'relay/smtp' && l.tls === true));
});

test('send: a failed TLS handshake with an MX is retried once in plain text', async (t) => {
  const env = await setup(t, { 'remote.test': { A: ['127.0.0.1'] } });
  const sink = await env.sink({ starttls: true });
  // A proxy in front of the sink that answers STARTTLS with 220 and then garbage: the handshake fails.
  const { createServer, connect } = await import('node:net');
  let broken = 0;
  const proxy = createServer((client) => {
    const up = connect(sink.port, '127.0.0.1');
    up.pipe(client);
    client.on('data', (d: Buffer) => {
      if (/^STARTTLS/im.test(d.toString('latin1'))) {
        broken++;
        up.destroy();
        client.end('220 2.0.0 go ahead\r\nthis is not TLS at all\r\n');
        return;
      }
      up.write(d);
    });
    client.on('error', () => up.destroy());
    up.on('error', () => client.destroy());
    client.on('close', () => up.destroy());
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  t.after(() => proxy.close());
  const port = (proxy.address() as { port: number }).port;
  const [r] = await env.delivery({ remotePort: port }).send(job(['bob@remote.test']));
  assert.equal(r.outcome, 'delivered', JSON.stringify(r));
  assert.equal(broken, 1);
  assert.equal(sink.messages.length, 1);
  assert.equal(sink.messages[0].secure, false);
  const attempts = env.logs.filter((l) => l.component === 'relay/smtp');
  assert.deepEqual(
    attempts.map((l) => [l.result, l.tls]),
    [
      ['deferred', false],
      ['sent', false],
    ],
  );
});

test('smarthost: AUTH over required STARTTLS, certificate verified; every recipient goes there', async (t) => {
  const env = await setup(t, { 'smarthost.test': { A: ['127.0.0.1'] } });
  const sink = await env.sink({ starttls: true, auth: { user: 'relayuser', pass: 's3cret' } });
  env.settings.setMany({
    'smarthost.enabled': true,
    'smarthost.host': 'smarthost.test',
    'smarthost.port': sink.port,
    'smarthost.username': 'relayuser',
    'smarthost.password': 's3cret',
    'smarthost.tls': 'starttls',
  });
  const results = await env.delivery({ remotePort: 9, smarthostTls: { ca: TEST_TLS.cert } }).send(job(['a@nowhere.test', 'b@elsewhere.test']));
  assert.deepEqual(
    results.map((r) => [r.outcome, r.remoteMta]),
    [
      ['delivered', 'smarthost.test'],
      ['delivered', 'smarthost.test'],
    ],
  );
  assert.equal(sink.messages.length, 1);
  assert.equal(sink.messages[0].secure, true);
  assert.equal(sink.messages[0].user, 'relayuser');
  assert.deepEqual(sink.messages[0].to, ['a@nowhere.test', 'b@elsewhere.test']);
  // No MX lookup for the recipients' domains.
  assert.ok(!env.dns.queries.some((q) => q.type === 'MX'), JSON.stringify(env.dns.queries));
  assert.ok(env.logs.some((l) => l.component === 'relay/smtp' && l.smarthost === true && l.result === 'sent'));
});

test('smarthost: a wrong password, an untrusted certificate or missing STARTTLS defer, and nothing is sent', async (t) => {
  const env = await setup(t);
  const withTls = await env.sink({ starttls: true, auth: { user: 'relayuser', pass: 's3cret' } });
  const noTls = await env.sink({ auth: { user: 'relayuser', pass: 's3cret' }, server: { allowInsecureAuth: true } });
  const base = { 'smarthost.enabled': true, 'smarthost.host': '127.0.0.1', 'smarthost.username': 'relayuser', 'smarthost.tls': 'starttls' };

  env.settings.setMany({ ...base, 'smarthost.port': withTls.port, 'smarthost.password': 'wrong' });
  let [r] = await env.delivery({ smarthostTls: { ca: TEST_TLS.cert } }).send(job(['a@remote.test']));
  assert.deepEqual([r.outcome, failure(r).code, failure(r).status], ['tempfail', 454, '4.7.8']);

  env.settings.setMany({ 'smarthost.password': 's3cret' });
  [r] = await env.delivery().send(job(['a@remote.test'])); // no CA: the self-signed certificate is not trusted
  assert.deepEqual([r.outcome, failure(r).status], ['tempfail', '4.7.5']);

  env.settings.setMany({ 'smarthost.port': noTls.port });
  [r] = await env.delivery().send(job(['a@remote.test']));
  assert.deepEqual([r.outcome, failure(r).status], ['tempfail', '4.7.4']);

  assert.equal(withTls.received.length + noTls.received.length, 0);
});

test('smarthost: implicit TLS, and none without AUTH', async (t) => {
  const env = await setup(t);
  const tlsSink = await env.sink({ secure: true });
  env.settings.setMany({ 'smarthost.enabled': true, 'smarthost.host': '127.0.0.1', 'smarthost.port': tlsSink.port, 'smarthost.tls': 'tls' });
  let [r] = await env.delivery({ smarthostTls: { ca: TEST_TLS.cert } }).send(job(['a@remote.test']));
  assert.equal(r.outcome, 'delivered', JSON.stringify(r));
  assert.equal(tlsSink.messages[0].secure, true);

  const plain = await env.sink({ starttls: true });
  env.settings.setMany({ 'smarthost.port': plain.port, 'smarthost.tls': 'none' });
  [r] = await env.delivery().send(job(['a@remote.test']));
  assert.equal(r.outcome, 'delivered', JSON.stringify(r));
  assert.equal(plain.messages[0].secure, false);
  assert.equal(plain.messages[0].user, undefined);
});

// ---- relay next hop ---------------------------------------------------------------------------------------------

test('nexthop: host:port is used as is, with no MX lookup', async (t) => {
  const env = await setup(t, { 'relay.corp.test': { A: ['127.0.0.1'] } });
  const sink = await env.sink();
  let [r] = await env.delivery({ remotePort: 9 }).send(job(['a@branch.corp.test'], { nexthop: `127.0.0.1:${sink.port}` }));
  assert.equal(r.outcome, 'delivered', JSON.stringify(r));
  assert.equal(r.remoteMta, '127.0.0.1');
  [r] = await env.delivery({ remotePort: 9 }).send(job(['b@branch.corp.test'], { nexthop: `relay.corp.test:${sink.port}` }));
  assert.equal(r.outcome, 'delivered', JSON.stringify(r));
  assert.equal(r.remoteMta, 'relay.corp.test');
  // Without a port: config.delivery.remotePort.
  [r] = await env.delivery({ remotePort: sink.port }).send(job(['c@branch.corp.test'], { nexthop: 'relay.corp.test' }));
  assert.equal(r.outcome, 'delivered', JSON.stringify(r));
  assert.deepEqual(sink.messages.map((m) => m.to[0]), ['a@branch.corp.test', 'b@branch.corp.test', 'c@branch.corp.test']);
  assert.ok(!env.dns.queries.some((q) => q.type === 'MX'), JSON.stringify(env.dns.queries));
});

// ---- the message on the wire --------------------------------------------------------------------------------------

test('send: lines starting with "." are dot-stuffed and arrive intact', async (t) => {
  const env = await setup(t, { 'remote.test': { A: ['127.0.0.1'] } });
  const sink = await env.sink();
  const message = Buffer.from(
    'From: a@corp.example\r\nSubject: dots\r\n\r\nbefore\r\n.\r\n..\r\n.hidden\r\n. space\r\nMAIL FROM:<evil@x>\r\n.\r\nafter\r\n',
  );
  const [r] = await env.delivery().send(job(['a@remote.test'], { message }));
  assert.equal(r.outcome, 'delivered');
  assert.equal(sink.received.length, 1);
  assert.deepEqual(sink.messages[0].data, message);
});

test('send: a bare LF or CR in the message never reaches the wire (no SMTP smuggling)', async (t) => {
  const env = await setup(t, { 'remote.test': { A: ['127.0.0.1'] } });
  const sink = await env.sink();
  const message = Buffer.from('Subject: smuggle\r\n\r\nline\n.\nMAIL FROM:<x@y>\r\nlone\r.\rcr\r\n');
  const [r] = await env.delivery().send(job(['a@remote.test'], { message }));
  assert.equal(r.outcome, 'delivered');
  assert.equal(sink.received.length, 1, 'one message, not two');
  const got = sink.messages[0].data.toString('latin1');
  assert.equal(got, 'Subject: smuggle\r\n\r\nline\r\n.\r\nMAIL FROM:<x@y>\r\nlone\r\n.\r\ncr\r\n');
  assert.doesNotMatch(got, /[^\r]\n|\r[^\n]/);
});

test('send: SIZE and BODY=8BITMIME as the server advertises; a message over the SIZE limit bounces', async (t) => {
  const env = await setup(t, { 'remote.test': { A: ['127.0.0.1'] } });
  const sink = await env.sink({ size: 400 });
  const eight = Buffer.from('Subject: caf\xc3\xa9\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\ncaf\xc3\xa9\r\n', 'latin1');
  let [r] = await env.delivery().send(job(['a@remote.test'], { message: eight }));
  assert.equal(r.outcome, 'delivered', JSON.stringify(r));
  assert.equal(sink.messages[0].mailParams.SIZE, String(eight.length));
  assert.equal(sink.messages[0].mailParams.BODY, '8BITMIME');
  assert.deepEqual(sink.messages[0].data, eight);

  [r] = await env.delivery().send(job(['a@remote.test'], { message: Buffer.concat([MESSAGE, Buffer.alloc(500, 'x'), Buffer.from('\r\n')]) }));
  assert.deepEqual([r.outcome, failure(r).code, failure(r).status], ['bounce', 552, '5.3.4']);
  assert.equal(sink.received.length, 1);
});

test('send: a non-ASCII address to a server without SMTPUTF8 bounces with 5.6.7; with it, it goes', async (t) => {
  const env = await setup(t, { 'remote.test': { A: ['127.0.0.1'] } });
  const sink = await env.sink({ server: { hideSMTPUTF8: true } as never });
  const r = byRcpt(await env.delivery().send(job(['jörg@remote.test', 'ascii@remote.test'])));
  assert.deepEqual([r['jörg@remote.test'].outcome, failure(r['jörg@remote.test']).status], ['bounce', '5.6.7']);
  assert.equal(r['ascii@remote.test'].outcome, 'delivered');
  assert.deepEqual(sink.messages.map((m) => m.to), [['ascii@remote.test']]);
});

test('nexthop or smarthost not found in DNS defers (a configuration error), it does not bounce', async (t) => {
  const env = await setup(t);
  let [r] = await env.delivery().send(job(['a@branch.corp.test'], { nexthop: 'missing.corp.test:2525' }));
  assert.deepEqual([r.outcome, failure(r).status], ['tempfail', '4.4.4']);
  env.settings.setMany({ 'smarthost.enabled': true, 'smarthost.host': 'missing-smarthost.test' });
  [r] = await env.delivery().send(job(['a@remote.test']));
  assert.deepEqual([r.outcome, failure(r).status], ['tempfail', '4.4.4']);
});

test('MX: an internationalised domain is looked up in its A-label form', async (t) => {
  const env = await setup(t, { 'xn--bcher-kva.test': { A: ['127.0.0.1'] } });
  const sink = await env.sink();
  const [r] = await env.delivery().send(job(['info@bücher.test']));
  assert.equal(r.outcome, 'delivered', JSON.stringify(r));
  assert.deepEqual(sink.messages[0].to, ['info@bücher.test']);
  assert.ok(env.dns.queries.some((q) => q.name === 'xn--bcher-kva.test'));
});
