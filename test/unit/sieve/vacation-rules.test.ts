/**
 * RFC 5230 / RFC 3834 rules of src/sieve/vacation.ts and the :days window of src/sieve/delivery.ts with the
 * tracking in sieve.db (src/sieve/state.ts), on a clock the test moves. Delivery through SMTP is covered by
 * test/protocol/sieve-vacation.test.ts; this is the window arithmetic a protocol test cannot wait days for.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TempFailure } from '../../../src/lib/errors.ts';
import { silentLogger } from '../../../src/lib/logger.ts';
import { SieveDelivery } from '../../../src/sieve/delivery.ts';
import { outOfOfficeActive, outOfOfficeInput } from '../../../src/sieve/out-of-office.ts';
import { SieveState } from '../../../src/sieve/state.ts';
import { addressesIn, buildVacationReply, headerMap, quotedPrintable, vacationSuppressed } from '../../../src/sieve/vacation.ts';

const dir = mkdtempSync(join(tmpdir(), 'postern-sieve-state-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const msg = (headers: string) => Buffer.from(`${headers}\r\n\r\nbody\r\n`);
const user = ['john@example.com', 'j.smith@example.com'];

describe('vacationSuppressed (RFC 5230 §4.5–4.6, RFC 3834 §2)', () => {
  const check = (sender: string, headers: string) => vacationSuppressed({ sender, headers: headerMap(msg(headers)), userAddresses: user });
  test('answers a direct message, the user named in To, Cc or Bcc in any case and with a display name', () => {
    assert.equal(check('a@x.example', 'To: "John, Smith" <J.Smith@Example.com>'), null);
    assert.equal(check('a@x.example', 'To: b@x.example\r\nCc: john@example.com (John)'), null);
  });
  test('refuses <>, robots, lists, bulk, programs, itself and indirect copies', () => {
    assert.match(check('', 'To: john@example.com')!, /null sender/);
    assert.match(check('a@x.example', 'To: john@example.com\r\nAuto-Submitted: auto-replied')!, /Auto-Submitted/);
    assert.equal(check('a@x.example', 'To: john@example.com\r\nAuto-Submitted: no'), null, 'Auto-Submitted: no is a person');
    assert.match(check('a@x.example', 'To: john@example.com\r\nList-Id: <l.x.example>')!, /list/);
    assert.match(check('a@x.example', 'To: john@example.com\r\nList-Post: <mailto:l@x.example>')!, /list/);
    assert.match(check('a@x.example', 'To: john@example.com\r\nPrecedence: junk')!, /Precedence/);
    assert.match(check('MAILER-DAEMON@x.example', 'To: john@example.com')!, /program/);
    assert.match(check('owner-l@x.example', 'To: john@example.com')!, /program/);
    assert.match(check('l-request@x.example', 'To: john@example.com')!, /program/);
    assert.match(check('john@example.com', 'To: john@example.com')!, /the user/);
    assert.match(check('a@x.example', 'To: "john@example.com" <other@x.example>')!, /not a direct recipient/, 'an address in a display name does not count');
  });
  test('addressesIn skips quoted display names and comments', () => {
    assert.deepEqual(addressesIn('"a@b.c" <D@E.example>, f@g.example (h@i.example)'), ['d@e.example', 'f@g.example']);
  });
});

describe('the reply (RFC 3834 §3, RFC 5230 §4.7)', () => {
  test('Auto: subject, In-Reply-To, References, Auto-Submitted, quoted-printable UTF-8 text', () => {
    const reply = buildVacationReply({
      hostname: 'mx.example.com',
      from: 'john@example.com',
      to: 'a@x.example',
      reason: 'Assente fino a lunedì.',
      headers: headerMap(msg('Subject: =?utf-8?q?Riunione_=C3=A8?=\r\nMessage-ID: <m1@x.example>\r\nReferences: <m0@x.example>')),
    }).toString('utf8');
    assert.match(reply, /^Subject: =\?utf-8\?B\?[A-Za-z0-9+/=]+\?=\r$/m, 'the decoded subject, encoded again');
    assert.match(reply, /^In-Reply-To: <m1@x\.example>\r$/m);
    assert.match(reply, /^References: <m0@x\.example>\r\n <m1@x\.example>\r$/m);
    assert.match(reply, /^Auto-Submitted: auto-replied\r$/m);
    assert.match(reply, /luned=C3=AC\./);
    assert.doesNotMatch(reply, /[^\r]\n/, 'CRLF only');
  });
  test('quoted-printable keeps lines under 77 characters', () => {
    for (const line of quotedPrintable('é'.repeat(100)).split('\r\n')) assert.ok(line.length <= 76, line);
  });
});

describe('the window (RFC 5230 §4.1, RFC 6131)', () => {
  const state = SieveState.open(dir);
  after(() => state.close());
  let now = Date.parse('2026-12-01T10:00:00Z');
  const delivery = new SieveDelivery({
    state,
    hostname: 'mx.example.com',
    log: silentLogger,
    findUser: async () => ({ kind: 'user', dn: 'CN=J', login: 'john.smith', primaryAddress: 'john@example.com', addresses: user, disabled: false, expired: false, locked: false, mustChangePassword: false, enabled: true, canLogin: true, memberOf: [] }),
    home: () => dir,
    folderExists: () => true,
    beforeScript: () => null,
    activeScript: async () => null,
    limits: { maxRedirects: 4, vacationMinSeconds: 3600, vacationMaxDays: 60 },
    now: () => new Date(now),
  });
  const deliver = async (from: string) => {
    const plan = await delivery.plan({
      owner: { kind: 'user', login: 'john.smith' },
      envelope: { id: 'Q1', from },
      recipient: 'john@example.com',
      message: msg(`From: ${from}\r\nTo: john@example.com\r\nSubject: hi`),
      keepFolder: 'INBOX',
    });
    plan.sent();
    plan.delivered();
    return plan;
  };

  test('the out-of-office answers once per sender per :days, again after the window, and keeps the message', async () => {
    state.setOutOfOffice({ login: 'John.Smith', text: 'Away.', days: 2 });
    let p = await deliver('a@x.example');
    assert.equal(p.outgoing.length, 1);
    assert.deepEqual(p.copies.map((c) => c.folder), ['INBOX']);
    assert.equal(p.outgoing[0].from, '', 'null return path');
    now += 86_400_000; // one day later: inside the two days
    p = await deliver('a@x.example');
    assert.equal(p.outgoing.length, 0);
    p = await deliver('b@x.example');
    assert.equal(p.outgoing.length, 1, 'another sender has its own window');
    now += 86_400_000 + 1000; // past two days since the first reply
    p = await deliver('a@x.example');
    assert.equal(p.outgoing.length, 1);
  });

  test('a new text is news: the people already answered get it once', async () => {
    state.setOutOfOffice({ login: 'john.smith', text: 'Away longer.', days: 2 });
    assert.equal((await deliver('a@x.example')).outgoing.length, 1);
    assert.equal((await deliver('a@x.example')).outgoing.length, 0);
  });

  test('start and end decide whether it answers', () => {
    const o = outOfOfficeInput.parse({ start: '2026-12-24', end: '2026-12-31', text: 'x' });
    assert.equal(outOfOfficeActive(o, Date.parse('2026-12-23T23:59:59Z')), false);
    assert.equal(outOfOfficeActive(o, Date.parse('2026-12-24T00:00:00Z')), true);
    assert.equal(outOfOfficeActive(o, Date.parse('2026-12-31T23:00:00Z')), true, 'the end date is included');
    assert.equal(outOfOfficeActive(o, Date.parse('2027-01-01T00:00:00Z')), false);
    assert.equal(outOfOfficeInput.safeParse({ start: '2026-12-31', end: '2026-12-24', text: 'x' }).success, false);
    assert.equal(outOfOfficeInput.safeParse({ text: '' }).success, false);
  });
});

describe('the directory at delivery', () => {
  const state = SieveState.open(join(dir, 'lookups'));
  after(() => state.close());
  let asked = 0;
  let adDown = false;
  const delivery = new SieveDelivery({
    state,
    hostname: 'mx.example.com',
    log: silentLogger,
    findUser: async () => {
      asked++;
      if (adDown) throw new TempFailure('AD unreachable');
      return { kind: 'user', dn: 'CN=J', login: 'jane.doe', primaryAddress: 'jane@example.com', addresses: ['jane@example.com', 'jd@example.com'], disabled: false, expired: false, locked: false, mustChangePassword: false, enabled: true, canLogin: true, memberOf: [] };
    },
    home: () => dir,
    folderExists: () => true,
    beforeScript: () => null,
    activeScript: async () => null,
    limits: { maxRedirects: 4, vacationMinSeconds: 3600, vacationMaxDays: 60 },
  });
  const plan = () =>
    delivery.plan({
      owner: { kind: 'user', login: 'jane.doe' },
      envelope: { id: 'Q2', from: 'a@x.example' },
      recipient: 'jane@example.com',
      message: msg('From: a@x.example\r\nTo: jd@example.com\r\nSubject: hi'),
      keepFolder: 'INBOX',
    });

  test('a user without script or out-of-office is delivered without asking the directory, even while AD is down', async () => {
    adDown = true;
    const p = await plan();
    assert.deepEqual(p.copies.map((c) => c.folder), ['INBOX']);
    assert.deepEqual(p.outgoing, []);
    assert.equal(asked, 0);
  });

  test('an out-of-office asks for the addresses (a reply to a message sent to another of them), and AD down is temporary', async () => {
    state.setOutOfOffice({ login: 'jane.doe', text: 'Away.', days: 1 });
    await assert.rejects(plan(), TempFailure);
    adDown = false;
    const p = await plan();
    assert.equal(asked, 2);
    assert.equal(p.outgoing.length, 1, 'To: jd@example.com is one of her addresses: answered');
  });
});
