import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { Resolver } from 'node:dns/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dkimVerify } from 'mailauth';
import { main } from '../../../src/main.ts';
import { PACKAGE_ROOT } from '../../../src/config/load.ts';
import { silentLogger } from '../../../src/lib/logger.ts';
import {
  defaultSelector,
  DkimKeyError,
  dkimRecordFor,
  DkimSigner,
  generateDkimKey,
  headerFromDomain,
  listDkimKeys,
} from '../../../src/delivery/dkim.ts';
import { startDnsServer, type TestDnsServer } from '../../helpers/dns-server.ts';

const MESSAGE = Buffer.from(
  [
    'From: "Alice Example" <alice@corp.example>',
    'To: bob@remote.test',
    'Subject: quarterly report',
    'Date: Mon, 04 May 2026 10:00:00 +0000',
    'Message-ID: <r1@corp.example>',
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    'X-Mailer: test',
    '',
    'Numbers attached.',
    '',
  ].join('\r\n'),
);

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'postern-dkim-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** The base64 SubjectPublicKeyInfo of a PEM private key: what p= must be. */
function publicOf(pem: string): string {
  return createPublicKey(createPrivateKey(pem)).export({ type: 'spki', format: 'der' }).toString('base64');
}

async function verifier(t: TestContext, records: { name: string; strings: string[] }[]): Promise<{ dns: TestDnsServer; verify(m: Buffer): Promise<Awaited<ReturnType<typeof dkimVerify>>> }> {
  const dns = await startDnsServer(Object.fromEntries(records.map((r) => [r.name, { TXT: [r.strings] }])));
  t.after(() => dns.close());
  const resolver = new Resolver({ timeout: 1000, tries: 1 });
  resolver.setServers([dns.address]);
  return {
    dns,
    verify: (m) => dkimVerify(m, { resolver: (name, type) => resolver.resolve(name, type as 'TXT') }),
  };
}

test('generateDkimKey writes a 0600 PEM and returns the record to publish', async (t) => {
  const dataDir = tempDir(t);
  const r = await generateDkimKey(dataDir, 'Corp.Example', { selector: 'mail2026' });
  assert.equal(r.path, join(dataDir, 'dkim', 'corp.example.mail2026.key'));
  assert.equal(statSync(r.path).mode & 0o777, 0o600);
  assert.equal(statSync(join(dataDir, 'dkim')).mode & 0o777, 0o700);
  const pem = readFileSync(r.path, 'utf8');
  assert.match(pem, /^-----BEGIN PRIVATE KEY-----/);
  assert.equal(createPrivateKey(pem).asymmetricKeyDetails?.modulusLength, 2048);

  assert.equal(r.name, 'mail2026._domainkey.corp.example');
  assert.equal(r.bits, 2048);
  assert.equal(r.value, `v=DKIM1; k=rsa; p=${publicOf(pem)}`);
  assert.ok(r.strings.length >= 2 && r.strings.every((s) => Buffer.byteLength(s) <= 255));
  assert.equal(r.strings.join(''), r.value);
  assert.equal(r.zoneLine, `mail2026._domainkey.corp.example. IN TXT ( ${r.strings.map((s) => `"${s}"`).join(' ')} )`);
  assert.deepEqual(r.replaced, []);

  const again = await dkimRecordFor(dataDir, 'corp.example');
  assert.equal(again?.value, r.value);
  assert.equal(await dkimRecordFor(dataDir, 'other.example'), null);
});

test('default selector, sizes, refusing to replace a key without force', async (t) => {
  const dataDir = tempDir(t);
  assert.equal(defaultSelector(new Date('2026-05-04T23:00:00Z')), 'postern-20260504');
  const first = await generateDkimKey(dataDir, 'corp.example', { bits: 1024, now: new Date('2026-05-04T12:00:00Z') });
  assert.equal(first.selector, 'postern-20260504');
  assert.equal(first.bits, 1024);

  await assert.rejects(generateDkimKey(dataDir, 'corp.example', { selector: 'other', bits: 1024 }), (err: unknown) => {
    assert.ok(err instanceof DkimKeyError);
    assert.equal(err.reason, 'exists');
    assert.match(err.message, /already has a DKIM key \(selector postern-20260504\)/);
    return true;
  });
  await assert.rejects(generateDkimKey(dataDir, 'x.example', { bits: 512 }), /bits/);
  await assert.rejects(generateDkimKey(dataDir, 'x.example', { selector: 'a.b' }), /not a valid selector/);
  await assert.rejects(generateDkimKey(dataDir, 'not_a_domain'), /fully qualified/);

  const second = await generateDkimKey(dataDir, 'corp.example', { selector: 'rotated', bits: 1024, force: true });
  assert.deepEqual(second.replaced, ['postern-20260504']);
  assert.equal(existsSync(first.path), false);
  const keys = await listDkimKeys(dataDir);
  assert.deepEqual(
    keys.map((k) => [k.domain, k.selector, k.bits]),
    [['corp.example', 'rotated', 1024]],
  );
});

test('headerFromDomain', () => {
  const m = (from: string) => Buffer.from(`Subject: x\r\nFrom: ${from}\r\n\r\nbody From: a@b.example\r\n`);
  assert.equal(headerFromDomain(m('"Alice Example" <alice@Corp.Example>')), 'corp.example');
  assert.equal(headerFromDomain(m('alice@corp.example')), 'corp.example');
  assert.equal(headerFromDomain(m('"a@evil.example" <alice@corp.example>')), 'corp.example');
  assert.equal(headerFromDomain(m('alice@corp.example (Alice @ home.example)')), 'corp.example');
  assert.equal(headerFromDomain(Buffer.from('From: Alice\r\n <alice@folded.example>\r\n\r\n')), 'folded.example');
  assert.equal(headerFromDomain(Buffer.from('Subject: none\r\n\r\nFrom: a@b.example\r\n')), null);
});

test('sign → verify roundtrip; other domains unchanged; parent-domain key; tampering detected', async (t) => {
  const dataDir = tempDir(t);
  const r = await generateDkimKey(dataDir, 'corp.example', { selector: 's1' });
  const signer = new DkimSigner({ dataDir, log: silentLogger });
  const { verify } = await verifier(t, [r]);

  const signed = await signer.sign(MESSAGE, 'corp.example');
  assert.ok(signed.toString().startsWith('DKIM-Signature: '));
  assert.ok(signed.subarray(signed.length - MESSAGE.length).equals(MESSAGE), 'the message itself is unchanged');
  const header = signed.toString().split('\r\n\r\n')[0].replace(/\r\n\s+/g, ' ');
  assert.match(header, /a=rsa-sha256/);
  assert.match(header, /c=relaxed\/relaxed/);
  assert.match(header, /d=corp\.example/);
  assert.match(header, /s=s1/);
  const h = /h=([^;]+)/.exec(header)![1].replace(/\s/g, '').toLowerCase().split(':');
  for (const name of ['from', 'to', 'subject', 'date', 'message-id', 'mime-version', 'content-type']) assert.ok(h.includes(name), name);
  assert.ok(!h.includes('x-mailer'));

  const ok = await verify(signed);
  assert.equal(ok.results[0].status.result, 'pass', JSON.stringify(ok.results[0].status));
  assert.equal(ok.results[0].signingDomain, 'corp.example');

  // The From domain is read from the header when not given.
  assert.equal((await verify(await signer.sign(MESSAGE))).results[0].status.result, 'pass');

  // A subdomain is signed with the parent's key (relaxed DMARC alignment).
  const sub = Buffer.from(MESSAGE.toString().replace('alice@corp.example', 'alice@sales.corp.example'));
  const subSigned = await signer.sign(sub);
  assert.match(subSigned.toString(), /d=corp\.example/);
  assert.equal((await verify(subSigned)).results[0].status.result, 'pass');

  // No key: unchanged.
  const other = Buffer.from(MESSAGE.toString().replace('alice@corp.example', 'alice@other.example'));
  assert.equal(await signer.sign(other), other);
  assert.equal(await signer.sign(MESSAGE, 'example'), MESSAGE);

  // mailauth (like Gmail) reports a body hash mismatch as neutral; the mail-auth stage turns it into fail.
  const tampered = Buffer.from(signed.toString().replace('Numbers attached.', 'Numbers changed.'));
  const bad = (await verify(tampered)).results[0].status;
  assert.notEqual(bad.result, 'pass');
  assert.equal(bad.comment, 'body hash did not verify');
  const retitled = Buffer.from(signed.toString().replace('Subject: quarterly report', 'Subject: urgent'));
  assert.equal((await verify(retitled)).results[0].status.result, 'fail');
});

test('the t= that is sent is the one that was signed, even when the clock ticks during signing', async (t) => {
  const dataDir = tempDir(t);
  const r = await generateDkimKey(dataDir, 'corp.example', { selector: 's1', bits: 1024 });
  const signer = new DkimSigner({ dataDir, log: silentLogger });
  const { verify } = await verifier(t, [r]);

  // Every read of Date.now() is a second later than the one before: what a slow RSA signature on a loaded machine
  // does once in a while, when a second boundary falls between two reads of the clock.
  let now = Date.now() - 60_000;
  const clock = t.mock.method(Date, 'now', () => (now += 1000));
  const signed = await signer.sign(MESSAGE);
  clock.mock.restore();

  const header = signed.toString().split('\r\n\r\n')[0].replace(/\r\n\s+/g, ' ');
  const ts = Number(/[;\s]t=(\d+)/.exec(header)?.[1]);
  assert.ok(ts > 0 && ts * 1000 <= Date.now(), `t=${ts} is a signing time, not in the future`);
  const result = (await verify(signed)).results[0];
  assert.equal(result.status.result, 'pass', JSON.stringify(result.status));
});

test('the signer reloads keys when they change on disk', async (t) => {
  const dataDir = tempDir(t);
  const signer = new DkimSigner({ dataDir, log: silentLogger });
  assert.equal(await signer.sign(MESSAGE), MESSAGE, 'no dkim directory yet');

  const a = await generateDkimKey(dataDir, 'corp.example', { selector: 'a', bits: 1024 });
  assert.match((await signer.sign(MESSAGE)).toString(), /s=a;/);

  const b = await generateDkimKey(dataDir, 'corp.example', { selector: 'b', bits: 1024, force: true });
  const withB = await signer.sign(MESSAGE);
  assert.match(withB.toString(), /s=b;/);

  // Same selector, new key: the new file is used.
  const b2 = await generateDkimKey(dataDir, 'corp.example', { selector: 'b', bits: 1024, force: true });
  assert.notEqual(b2.value, b.value);
  const { verify } = await verifier(t, [b2]);
  assert.equal((await verify(await signer.sign(MESSAGE))).results[0].status.result, 'pass');
  assert.ok(a);

  // A damaged key: sent unsigned, not refused.
  writeFileSync(b2.path, 'not a key\n');
  assert.equal(await signer.sign(MESSAGE), MESSAGE);
});

// ---- CLI ----------------------------------------------------------------------------------------------------

async function cli(t: TestContext): Promise<{ dataDir: string; run(...argv: string[]): Promise<{ code: number; out: string; err: string }> }> {
  const root = tempDir(t);
  const dataDir = join(root, 'data');
  const config = join(root, 'postern.yaml');
  writeFileSync(
    config,
    `dataDir: ${JSON.stringify(dataDir)}\ndirectory:\n  type: ldif\n  file: ${JSON.stringify(join(PACKAGE_ROOT, 'fixtures/ad/corp.ldif'))}\n`,
  );
  return {
    dataDir,
    async run(...argv) {
      const out: string[] = [];
      const err: string[] = [];
      const code = await main(['--config', config, ...argv], { out: (l) => out.push(l), err: (l) => err.push(l) });
      return { code, out: out.join('\n'), err: err.join('\n') };
    },
  };
}

test('postern dkim generate / show / list', async (t) => {
  const { dataDir, run } = await cli(t);
  let r = await run('dkim', 'list');
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /no DKIM keys/);

  r = await run('dkim', 'generate', 'corp.example', '--selector', 'mail');
  assert.equal(r.code, 0, r.err);
  const keyPath = join(dataDir, 'dkim', 'corp.example.mail.key');
  assert.match(r.out, /generated a 2048-bit DKIM key for corp\.example, selector mail/);
  assert.match(r.out, /name: {2}mail\._domainkey\.corp\.example$/m);
  const value = /value: (v=DKIM1; k=rsa; p=\S+)$/m.exec(r.out)![1];
  const p = /p=(\S+)$/.exec(value)![1];
  assert.equal(p, publicOf(readFileSync(keyPath, 'utf8')), 'p= is the stored key\'s public key');
  const zone = /^mail\._domainkey\.corp\.example\. IN TXT \( (.*) \)$/m.exec(r.out);
  assert.ok(zone, r.out);
  assert.equal([...zone[1].matchAll(/"([^"]*)"/g)].map((m) => m[1]).join(''), value);

  r = await run('dkim', 'generate', 'corp.example');
  assert.equal(r.code, 1);
  assert.match(r.err, /already has a DKIM key \(selector mail\); give --force/);
  assert.equal(publicOf(readFileSync(keyPath, 'utf8')), p, 'the key is kept');

  r = await run('dkim', 'show', 'Corp.Example');
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, new RegExp(`value: ${value.replace(/[+/.*?()[\]]/g, '\\$&')}$`, 'm'));

  r = await run('dkim', 'show', 'corp.example', '--json');
  assert.equal(JSON.parse(r.out).value, value);

  r = await run('dkim', 'generate', 'corp.example', '--selector', 'mail2', '--bits', '1024', '--force');
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /replaced the key\(s\) with selector mail/);
  assert.equal(existsSync(keyPath), false);

  r = await run('dkim', 'list');
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /^DOMAIN\s+SELECTOR\s+BITS\s+CREATED\s+FILE$/m);
  assert.match(r.out, /^corp\.example\s+mail2\s+1024\s+\d{4}-\d\d-\d\d\s+\S+corp\.example\.mail2\.key$/m);

  r = await run('dkim', 'show', 'other.example');
  assert.equal(r.code, 1);
  assert.match(r.err, /other\.example has no DKIM key/);
  r = await run('dkim', 'generate', 'not_a_domain');
  assert.equal(r.code, 64);
  r = await run('dkim', 'generate', 'x.example', '--bits', '1000');
  assert.equal(r.code, 64);
  r = await run('dkim', 'generate', 'x.example', '--bits', 'many');
  assert.equal(r.code, 64);
});
