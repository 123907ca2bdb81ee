import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../../src/lib/logger.ts';
import { openSettings, type Settings } from '../../../src/settings/store.ts';
import { DkimSigner, generateDkimKey } from '../../../src/delivery/dkim.ts';
import { mailAuthStage, type MailAuthStageOptions } from '../../../src/filters/mail-auth.ts';
import type { FilterContext, FilterVerdict } from '../../../src/filters/types.ts';
import { startDnsServer, type TestDnsServer } from '../../helpers/dns-server.ts';

const HOST = 'mx.corp.example';
let dir: string;
let settings: Settings;
let dns: TestDnsServer;
let deaf: TestDnsServer;
let signer: DkimSigner;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'postern-mailauth-'));
  settings = openSettings(dir);
  const sender = await generateDkimKey(dir, 'sender.test', { selector: 's1' });
  const evil = await generateDkimKey(dir, 'evil.test', { selector: 's1', bits: 1024 });
  signer = new DkimSigner({ dataDir: dir, log: silentLogger });
  dns = await startDnsServer({
    // sender.test: SPF allows 127.0.0.1, DKIM key published, DMARC p=reject.
    'sender.test': { TXT: ['v=spf1 ip4:127.0.0.1 -all'] },
    [sender.name]: { TXT: [sender.strings] },
    '_dmarc.sender.test': { TXT: ['v=DMARC1; p=reject'] },
    // strict.test: nobody may send, p=reject.
    'strict.test': { TXT: ['v=spf1 -all'] },
    '_dmarc.strict.test': { TXT: ['v=DMARC1; p=reject'] },
    // lax.test: nobody may send, but only p=none.
    'lax.test': { TXT: ['v=spf1 -all'] },
    '_dmarc.lax.test': { TXT: ['v=DMARC1; p=none'] },
    // flaky.test: p=reject, but its SPF record cannot be had right now.
    'flaky.test': { error: 'timeout' },
    '_dmarc.flaky.test': { TXT: ['v=DMARC1; p=reject'] },
    // evil.test: a forger's domain whose key lookup times out.
    [evil.name]: { error: 'timeout' },
    'evil.test': { TXT: ['v=spf1 -all'] },
  });
  deaf = await startDnsServer();
  deaf.lookup = () => ({ error: 'timeout' });
});

after(async () => {
  await dns.close();
  await deaf.close();
  settings.close();
  rmSync(dir, { recursive: true, force: true });
});

function message(from: string, body = 'Hello Bob.'): Buffer {
  return Buffer.from(
    [
      `From: Alice <${from}>`,
      'To: bob@corp.example',
      'Subject: hello',
      'Date: Mon, 04 May 2026 10:00:00 +0000',
      `Message-ID: <${Date.now()}@${from.split('@')[1]}>`,
      'MIME-Version: 1.0',
      'Content-Type: text/plain',
      '',
      body,
      '',
    ].join('\r\n'),
  );
}

function stage(o: Partial<MailAuthStageOptions> = {}) {
  return mailAuthStage({ settings, dns: { servers: [dns.address], timeoutMs: 300 }, hostname: HOST, log: silentLogger, checkTrusted: true, ...o });
}

function ctx(msg: Buffer, from: string, extra: Partial<FilterContext['client']> = {}): FilterContext {
  return {
    id: 'Q1',
    client: { address: '127.0.0.1', helo: 'client.sender.test', listener: 'smtp', ...extra },
    from,
    recipients: ['bob@corp.example'],
    message: msg,
    tags: {},
  };
}

function ar(v: FilterVerdict): string {
  const h = v.headers?.filter(([name]) => name === 'Authentication-Results') ?? [];
  assert.equal(h.length, 1, 'one Authentication-Results field');
  return h[0][1];
}

test('DKIM signed by our own signer, SPF allowing 127.0.0.1: all pass', async () => {
  settings.set('filter.dmarc.rejectOnPolicy', true);
  const signed = await signer.sign(message('alice@sender.test'));
  const v = await stage().check(ctx(signed, 'alice@sender.test'));
  assert.equal(v.action, 'mark');
  assert.deepEqual(v.tags, { spf: 'pass', dkim: 'pass', dmarc: 'pass', dmarcPolicy: 'reject', fromDomain: 'sender.test' });
  const value = ar(v);
  assert.ok(value.startsWith(`${HOST}; dkim=pass `), value);
  assert.match(value, /dkim=pass [^;]*header\.i=@sender\.test header\.s=s1/);
  assert.match(value, /spf=pass [^;]*smtp\.mailfrom=alice@sender\.test/);
  assert.match(value, /dmarc=pass [^;]*header\.from=sender\.test/);
  assert.doesNotMatch(value, /[\r\n]/, 'one line: the pipeline folds');
});

test('a tampered body: dkim=fail', async () => {
  const signed = await signer.sign(message('alice@sender.test'));
  const tampered = Buffer.from(signed.toString().replace('Hello Bob.', 'Hello Eve.'));
  const v = await stage().check(ctx(tampered, 'alice@sender.test'));
  assert.equal(v.tags!.dkim, 'fail');
  assert.match(ar(v), /dkim=fail \(body hash did not verify\)/);
  // SPF still passes and aligns, so DMARC passes: no rejection.
  assert.equal(v.tags!.dmarc, 'pass');
  assert.equal(v.action, 'mark');
});

test('SPF: ip4:127.0.0.1 passes, -all fails', async () => {
  settings.set('filter.dmarc.rejectOnPolicy', false);
  const pass = await stage().check(ctx(message('alice@sender.test'), 'alice@sender.test'));
  assert.equal(pass.tags!.spf, 'pass');
  assert.equal(pass.tags!.dkim, 'none');
  const fail = await stage().check(ctx(message('alice@strict.test'), 'alice@strict.test'));
  assert.equal(fail.tags!.spf, 'fail');
  assert.match(ar(fail), /spf=fail /);
});

test('DMARC fail with p=reject: refused only when filter.dmarc.rejectOnPolicy is on', async () => {
  const msg = message('ceo@strict.test');
  settings.set('filter.dmarc.rejectOnPolicy', false);
  const off = await stage().check(ctx(msg, 'ceo@strict.test'));
  assert.equal(off.action, 'mark');
  assert.equal(off.tags!.dmarc, 'fail');
  assert.equal(off.tags!.dmarcPolicy, 'reject');
  assert.match(ar(off), /dmarc=fail \(p=REJECT[ )]/);

  settings.set('filter.dmarc.rejectOnPolicy', true);
  const on = await stage().check(ctx(msg, 'ceo@strict.test'));
  assert.equal(on.action, 'reject');
  assert.deepEqual(on.reply, { code: 550, enhanced: '5.7.1', text: 'Message rejected by DMARC policy of strict.test' });
  assert.match(ar(on), /dmarc=fail/);

  // A null sender is checked with the HELO name (RFC 7208 §2.4); the From domain still decides DMARC.
  const bounce = await stage().check(ctx(msg, ''));
  assert.equal(bounce.action, 'reject');

  // p=none: never refused.
  const none = await stage().check(ctx(message('ceo@lax.test'), 'ceo@lax.test'));
  assert.equal(none.action, 'mark');
  assert.equal(none.tags!.dmarc, 'fail');
  assert.equal(none.tags!.dmarcPolicy, 'none');

  // pct=0 sampling (RFC 7489 §6.6.4) is honoured via the random source.
  dns.set('_dmarc.lax.test', { TXT: ['v=DMARC1; p=reject; pct=50'] });
  assert.equal((await stage({ random: () => 0.7 }).check(ctx(message('ceo@lax.test'), 'ceo@lax.test'))).action, 'mark');
  assert.equal((await stage({ random: () => 0.2 }).check(ctx(message('ceo@lax.test'), 'ceo@lax.test'))).action, 'reject');
  dns.set('_dmarc.lax.test', { TXT: ['v=DMARC1; p=none'] });
});

test('a DNS server that does not answer: temperror, no rejection', async () => {
  settings.set('filter.dmarc.rejectOnPolicy', true);
  const signed = await signer.sign(message('ceo@sender.test'));
  const started = Date.now();
  const v = await stage({ dns: { servers: [deaf.address], timeoutMs: 200 } }).check(ctx(signed, 'ceo@sender.test'));
  assert.notEqual(v.action, 'reject');
  assert.equal(v.tags!.spf, 'temperror');
  assert.equal(v.tags!.dkim, 'temperror');
  assert.equal(v.tags!.dmarc, 'temperror');
  assert.match(ar(v), /dmarc=temperror/);
  assert.ok(Date.now() - started < 5000, `took ${Date.now() - started} ms`);
});

test('an aligned lookup in temperror keeps the policy from applying; an unaligned one does not', async () => {
  settings.set('filter.dmarc.rejectOnPolicy', true);
  const flaky = await stage().check(ctx(message('ceo@flaky.test'), 'ceo@flaky.test'));
  assert.equal(flaky.tags!.spf, 'temperror');
  assert.equal(flaky.tags!.dmarc, 'fail');
  assert.equal(flaky.action, 'mark');

  // A forger signs strict.test mail with their own domain's key and makes its lookup time out.
  const forged = await signer.sign(message('ceo@strict.test'), 'evil.test');
  const v = await stage().check(ctx(forged, 'ceo@strict.test'));
  assert.equal(v.tags!.dkim, 'temperror');
  assert.equal(v.action, 'reject');
});

test('the time budget: past it, temperror and no rejection', async () => {
  settings.set('filter.dmarc.rejectOnPolicy', true);
  const v = await stage({ dns: { servers: [deaf.address], timeoutMs: 1000 }, budgetMs: 100 }).check(ctx(message('ceo@strict.test'), 'ceo@strict.test'));
  assert.equal(v.action, 'mark');
  assert.deepEqual(v.tags, { spf: 'temperror', dkim: 'temperror', dmarc: 'temperror' });
  assert.match(ar(v), new RegExp(`^${HOST.replace(/\./g, '\\.')}; spf=temperror \\(checks timed out\\) smtp\\.mailfrom=ceo@strict\\.test; dkim=temperror`));
});

test('not checked: submission, authenticated sessions, loopback and trusted clients', async () => {
  settings.set('filter.dmarc.rejectOnPolicy', true);
  const msg = message('ceo@strict.test');
  const before = dns.queries.length;
  assert.deepEqual(await stage().check(ctx(msg, 'ceo@strict.test', { listener: 'submission' })), { action: 'accept' });
  assert.deepEqual(await stage().check(ctx(msg, 'ceo@strict.test', { user: 'alice' })), { action: 'accept' });
  assert.deepEqual(await stage({ checkTrusted: false }).check(ctx(msg, 'ceo@strict.test')), { action: 'accept' });
  settings.set('smtp.relayFrom', ['192.0.2.0/24']);
  assert.deepEqual(await stage({ checkTrusted: false }).check(ctx(msg, 'ceo@strict.test', { address: '::ffff:192.0.2.9' })), { action: 'accept' });
  settings.set('smtp.relayFrom', []);
  assert.equal(dns.queries.length, before, 'no lookups');
});
