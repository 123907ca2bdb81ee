/** SRS0 rewriting and reversal (src/delivery/srs.ts): keyed hash, timestamp, case folding, rotation, expiry. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Srs } from '../../../src/delivery/srs.ts';

const DAY = 86_400_000;
const at = (days: number) => () => Date.UTC(2026, 11, 1) + days * DAY;
const srs = (over: Partial<ConstructorParameters<typeof Srs>[0]> = {}) => new Srs({ secrets: ['s3cret'], domain: 'mx.example.com', maxAgeDays: 21, now: at(0), ...over });

test('rewrites to SRS0=hash=time=domain=local@our domain and reverses it', () => {
  const rewritten = srs().forward('Alice.Martin@Orig.Example');
  assert.match(rewritten, /^SRS0=[A-Z2-7]{8}=[A-Z2-7]{2}=orig\.example=Alice\.Martin@mx\.example\.com$/);
  assert.deepEqual(srs().reverse(rewritten), { kind: 'valid', address: 'Alice.Martin@orig.example' });
  // MTAs (and our RCPT TO) may fold the case.
  assert.deepEqual(srs().reverse(rewritten.toLowerCase()), { kind: 'valid', address: 'alice.martin@orig.example' });
});

test('refuses a changed hash, domain or local part, and another secret', () => {
  const rewritten = srs().forward('alice@orig.example');
  const [, hash] = rewritten.split('=');
  const other = hash.replace(/^./, (c) => (c === 'A' ? 'B' : 'A'));
  assert.deepEqual(srs().reverse(rewritten.replace(hash, other)), { kind: 'invalid', reason: 'hash' });
  assert.deepEqual(srs().reverse(rewritten.replace('=orig.example=', '=evil.example=')), { kind: 'invalid', reason: 'hash' });
  assert.deepEqual(srs().reverse(rewritten.replace('=alice@', '=bob@')), { kind: 'invalid', reason: 'hash' });
  assert.deepEqual(srs({ secrets: ['another'] }).reverse(rewritten), { kind: 'invalid', reason: 'hash' });
});

test('honours an address for maxAgeDays, not after; across the 1024-day wrap', () => {
  const rewritten = srs({ now: at(1020) }).forward('alice@orig.example');
  assert.equal(srs({ now: at(1020 + 21) }).reverse(rewritten).kind, 'valid');
  assert.deepEqual(srs({ now: at(1020 + 22) }).reverse(rewritten), { kind: 'invalid', reason: 'expired' });
});

test('an old secret still verifies after rotation; the new one signs', () => {
  const old = srs({ secrets: ['old'] }).forward('alice@orig.example');
  const rotated = srs({ secrets: ['new', 'old'] });
  assert.equal(rotated.reverse(old).kind, 'valid');
  assert.equal(srs({ secrets: ['new'] }).reverse(rotated.forward('alice@orig.example')).kind, 'valid');
});

test('leaves the null sender and our own SRS addresses alone; other domains are not SRS to us', () => {
  const s = srs();
  assert.equal(s.forward(''), '');
  const once = s.forward('alice@orig.example');
  assert.equal(s.forward(once), once, 'not wrapped twice');
  assert.deepEqual(s.reverse('SRS0=AAAAAAAA=AA=orig.example=alice@elsewhere.example'), { kind: 'not-srs' });
  assert.deepEqual(s.reverse('john@example.com'), { kind: 'not-srs' });
});

test('makes a private secret file when there is none, and reads one secret per line', () => {
  const file = join(mkdtempSync(join(tmpdir(), 'postern-srs-')), 'sub', 'srs.secret');
  const [secret] = Srs.secretsFromFile(file);
  assert.match(secret, /^[0-9a-f]{64}$/);
  assert.equal(statSync(file).mode & 0o777, 0o600);
  assert.deepEqual(Srs.secretsFromFile(file), [readFileSync(file, 'utf8').trim()], 'the same secret on the next start');
});
