import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { createLogger } from '../../../src/lib/logger.ts';
import { TempFailure } from '../../../src/lib/errors.ts';
import { openSettings, type Settings } from '../../../src/settings/store.ts';
import { classifyDnsblAnswer, dnsblQueryName, dnsblStage, isPrivateAddress } from '../../../src/filters/dnsbl.ts';
import type { FilterContext, FilterStage } from '../../../src/filters/types.ts';
import { startDnsServer, type TestDnsServer } from '../../helpers/dns-server.ts';

interface Env {
  dns: TestDnsServer;
  settings: Settings;
  logs: Record<string, unknown>[];
  stage(opts?: { checkPrivate?: boolean; timeoutMs?: number }): FilterStage;
}

async function setup(t: TestContext): Promise<Env> {
  const dir = mkdtempSync(join(tmpdir(), 'postern-dnsbl-'));
  const settings = openSettings(dir);
  const dns = await startDnsServer({
    // bl.test: 127.0.0.2 is listed with a reason; every other address is not (NXDOMAIN).
    '2.0.0.127.bl.test': { A: ['127.0.0.2'], TXT: ['Listed in bl.test: see https://bl.test/q?ip=127.0.0.2'] },
    '1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.bl.test': { A: ['127.0.0.4'] },
    // Spamhaus-style error code: "query through a public resolver".
    '*.refusing.test': { A: ['127.255.255.254'] },
    // 127.0.0.1 (SURBL's "blocked") and a resolver rewriting NXDOMAIN to an ad server.
    '2.0.0.127.odd.test': { A: ['127.0.0.1', '198.51.100.7'] },
    '*.slow.test': { error: 'timeout' },
    '*.broken.test': { error: 'SERVFAIL' },
  });
  const logs: Record<string, unknown>[] = [];
  const out = new Writable({
    write(chunk, _enc, cb) {
      for (const line of String(chunk).split('\n')) if (line.trim()) logs.push(JSON.parse(line));
      cb();
    },
  });
  const log = createLogger('info', out).child({ component: 'filter' });
  t.after(async () => {
    await dns.close();
    settings.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return {
    dns,
    settings,
    logs,
    stage: (o = {}) =>
      dnsblStage({ settings, dns: { servers: [dns.address], timeoutMs: o.timeoutMs ?? 400 }, log, checkPrivate: o.checkPrivate ?? true }),
  };
}

/**
 * The questions asked, each once: c-ares re-sends a question whose answer is slower than its per-try timeout
 * (timeoutMs / 3, 133 ms here), which a loaded machine can make happen. A retry is not a second lookup.
 */
function asked(dns: TestDnsServer): { name: string; type: string }[] {
  const seen = new Set<string>();
  return dns.queries.filter((q) => {
    const key = `${q.type} ${q.name}`;
    return seen.has(key) ? false : (seen.add(key), true);
  });
}

function ctx(address: string, listener: FilterContext['client']['listener'] = 'smtp'): FilterContext {
  return { id: 'sess1', client: { address, listener }, recipients: [], tags: {} };
}

test('query names: reversed IPv4 octets and IPv6 nibbles (RFC 5782 §2.1, §2.4)', () => {
  assert.equal(dnsblQueryName('192.0.2.99', 'zen.example'), '99.2.0.192.zen.example');
  assert.equal(dnsblQueryName('::ffff:192.0.2.99', 'zen.example.'), '99.2.0.192.zen.example');
  // The example of RFC 5782 §2.4.
  assert.equal(
    dnsblQueryName('2001:db8:1:2:3:4:567:89ab', 'ugly.example.com'),
    'b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.ugly.example.com',
  );
  assert.equal(dnsblQueryName('2001:DB8::1', 'bl.test'), '1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.bl.test');
  assert.equal(dnsblQueryName('::', 'bl.test'), `${Array(32).fill('0').join('.')}.bl.test`);
  assert.equal(dnsblQueryName('64:ff9b::192.0.2.1', 'bl.test').slice(0, 16), '1.0.2.0.0.0.0.c.');
  assert.throws(() => dnsblQueryName('mail.example', 'bl.test'));
});

test('answer values: 127.0.0.2-255 listed, 127.255.255.x refused, others ignored', () => {
  assert.deepEqual(classifyDnsblAnswer(['127.0.0.2']), { status: 'listed', answer: '127.0.0.2' });
  assert.deepEqual(classifyDnsblAnswer(['127.0.0.11', '127.0.0.4']), { status: 'listed', answer: '127.0.0.11' });
  assert.deepEqual(classifyDnsblAnswer(['127.255.255.254']), { status: 'refused', answer: '127.255.255.254' });
  assert.deepEqual(classifyDnsblAnswer(['127.0.0.1']), { status: 'clean' });
  assert.deepEqual(classifyDnsblAnswer(['127.0.1.2']), { status: 'clean' });
  assert.deepEqual(classifyDnsblAnswer(['203.0.113.5']), { status: 'clean' });
  assert.deepEqual(classifyDnsblAnswer([]), { status: 'clean' });
});

test('private and loopback addresses', () => {
  for (const ip of ['127.0.0.1', '10.1.2.3', '172.16.0.1', '172.31.255.255', '192.168.1.1', '169.254.1.1', '100.64.0.1', '::1', 'fd00::1', 'fe80::1', '::ffff:10.0.0.1']) {
    assert.equal(isPrivateAddress(ip), true, ip);
  }
  for (const ip of ['192.0.2.1', '172.32.0.1', '8.8.8.8', '2001:db8::1', '::ffff:8.8.8.8']) assert.equal(isPrivateAddress(ip), false, ip);
});

test('no zones: accepted without a lookup', async (t) => {
  const env = await setup(t);
  const v = await env.stage().check(ctx('127.0.0.2'));
  assert.equal(v.action, 'accept');
  assert.equal(env.dns.queries.length, 0);
});

test('a listed client is refused with 554 5.7.1 and the zone\'s TXT reason', async (t) => {
  const env = await setup(t);
  env.settings.set('filter.dnsbl.zones', ['bl.test']);
  const v = await env.stage().check(ctx('127.0.0.2'));
  assert.equal(v.action, 'reject');
  assert.deepEqual(v.reply, {
    code: 554,
    enhanced: '5.7.1',
    text: 'Service unavailable; client [127.0.0.2] blocked using bl.test; Listed in bl.test: see https://bl.test/q?ip=127.0.0.2',
  });
  assert.deepEqual(v.tags, { dnsbl: { zone: 'bl.test', answer: '127.0.0.2', reason: 'Listed in bl.test: see https://bl.test/q?ip=127.0.0.2' } });
  assert.deepEqual(asked(env.dns).slice(0, 2), [
    { name: '2.0.0.127.bl.test', type: 'A' },
    { name: '2.0.0.127.bl.test', type: 'TXT' },
  ]);
});

test('a client not listed (NXDOMAIN) is accepted', async (t) => {
  const env = await setup(t);
  env.settings.set('filter.dnsbl.zones', ['bl.test']);
  const v = await env.stage().check(ctx('127.0.0.3'));
  assert.equal(v.action, 'accept');
  assert.deepEqual(asked(env.dns), [{ name: '3.0.0.127.bl.test', type: 'A' }]);
});

test('127.255.255.254 (error code), 127.0.0.1 and non-127 answers are not listings', async (t) => {
  const env = await setup(t);
  env.settings.set('filter.dnsbl.zones', ['refusing.test', 'odd.test']);
  const stage = env.stage();
  const v = await stage.check(ctx('127.0.0.2'));
  assert.equal(v.action, 'accept');
  assert.equal(v.tags, undefined, 'the zones answered: nothing failed');
  await stage.check(ctx('127.0.0.2'));
  const warnings = env.logs.filter((l) => String(l.msg).includes('error code'));
  assert.equal(warnings.length, 1, 'the error code is logged once, not per connection');
  assert.equal(warnings[0].zone, 'refusing.test');
  assert.equal(warnings[0].stage, 'dnsbl');
});

test('one zone timing out while another answers: the answer is used', async (t) => {
  const env = await setup(t);
  env.settings.set('filter.dnsbl.zones', ['slow.test', 'bl.test']);
  const stage = env.stage({ timeoutMs: 300 });
  let started = Date.now();
  const listed = await stage.check(ctx('127.0.0.2'));
  assert.equal(listed.action, 'reject');
  assert.match(listed.reply!.text, /blocked using bl\.test/);
  assert.ok(Date.now() - started < 2000, `took ${Date.now() - started} ms`);

  started = Date.now();
  const clean = await stage.check(ctx('127.0.0.3'));
  assert.equal(clean.action, 'accept');
  assert.deepEqual(clean.tags, { dnsblFailed: ['slow.test'] });
  assert.ok(Date.now() - started < 2000, `took ${Date.now() - started} ms`);
  assert.ok(env.logs.some((l) => l.msg === 'DNSBL lookup failed' && l.zone === 'slow.test' && l.error === 'ETIMEOUT'));
});

test('every zone failing (timeout, SERVFAIL) throws TempFailure for the pipeline', async (t) => {
  const env = await setup(t);
  env.settings.set('filter.dnsbl.zones', ['slow.test', 'broken.test']);
  await assert.rejects(env.stage({ timeoutMs: 300 }).check(ctx('127.0.0.3')), (err: unknown) => {
    assert.ok(err instanceof TempFailure);
    assert.match(err.message, /slow\.test: ETIMEOUT/);
    assert.match(err.message, /broken\.test: ESERVFAIL/);
    return true;
  });
});

test('an IPv6 client is looked up by nibbles', async (t) => {
  const env = await setup(t);
  env.settings.set('filter.dnsbl.zones', ['bl.test']);
  const v = await env.stage({ checkPrivate: false }).check(ctx('2001:db8::1'));
  assert.equal(v.action, 'reject');
  assert.equal(v.reply!.text, 'Service unavailable; client [2001:db8::1] blocked using bl.test');
  assert.equal(env.dns.queries[0].name, '1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.bl.test');
});

test('not checked: private clients, submission listeners, smtp.relayFrom and trusted networks', async (t) => {
  const env = await setup(t);
  env.settings.set('filter.dnsbl.zones', ['bl.test']);
  assert.equal((await env.stage({ checkPrivate: false }).check(ctx('127.0.0.2'))).action, 'accept');
  assert.equal((await env.stage({ checkPrivate: false }).check(ctx('192.168.10.20'))).action, 'accept');
  assert.equal((await env.stage().check(ctx('127.0.0.2', 'submission'))).action, 'accept');
  assert.equal((await env.stage().check(ctx('127.0.0.2', 'smtps'))).action, 'accept');
  env.settings.set('smtp.relayFrom', ['127.0.0.0/30']);
  assert.equal((await env.stage().check(ctx('127.0.0.2'))).action, 'accept');
  env.settings.set('smtp.relayFrom', []);
  env.settings.set('smtp.trustedNetworks', ['127.0.0.2']);
  assert.equal((await env.stage().check(ctx('::ffff:127.0.0.2'))).action, 'accept');
  assert.equal(env.dns.queries.length, 0);
  env.settings.set('smtp.trustedNetworks', []);
  assert.equal((await env.stage().check(ctx('::ffff:127.0.0.2'))).action, 'reject');
});
