/**
 * The extensions with state or structure, each with the examples of its RFC: date and index (RFC 5260), include
 * (RFC 6609), editheader (RFC 5293), vacation (RFC 5230) with vacation-seconds (RFC 6131), duplicate (RFC 7352);
 * and buildSieveMessage/applyEditedHeaders, which the deliverer uses.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { applyEditedHeaders, SieveRuntimeError, type SieveAction } from '../../../src/sieve/index.ts';
import { compileError, mail, run, summary } from './run-script.ts';

const fires = async (script: string, message: string[], opts = {}) => summary(await run(script, message, opts)).includes('discard');

describe('date and index (RFC 5260)', () => {
  test('§4.4: date :value with :originalzone on the Date field', async () => {
    const s = `require ["date", "relational", "fileinto"];
      if allof(header :is "from" "boss@example.com", date :value "ge" :originalzone "date" "hour" "09", date :value "lt" :originalzone "date" "hour" "17") { fileinto "urgent"; }`;
    assert.deepEqual(summary(await run(s, ['From: boss@example.com', 'Date: Tue, 1 Dec 2026 10:30:00 -0800', '', 'b'])), ['fileinto:urgent']);
    assert.deepEqual(summary(await run(s, ['From: boss@example.com', 'Date: Tue, 1 Dec 2026 18:30:00 -0800', '', 'b'])), ['keep']);
  });

  test('§4.4: the weekday of the first Received field, after its ";"', async () => {
    const s = 'require ["date", "relational", "fileinto"]; if anyof(date :is "received" "weekday" "0", date :is "received" "weekday" "6") { fileinto "weekend"; }';
    const m = (d: string) => [`Received: from a by b; ${d}`, 'Received: from c by d; Tue, 1 Dec 2026 10:00:00 +0000', '', 'b'];
    assert.deepEqual(summary(await run(s, m('Sun, 29 Nov 2026 10:00:00 +0000'))), ['fileinto:weekend']);
    assert.deepEqual(summary(await run(s, m('Mon, 30 Nov 2026 10:00:00 +0000'))), ['keep']);
  });

  test('§4.2 date parts, shifted by :zone; the local zone by default', async () => {
    const m = ['Date: Sun, 07 Jan 2007 23:05:32 -0100', '', 'b'];
    const part = async (p: string, zone = ':zone "+0100"') => {
      const r = await run(`require ["date", "variables", "reject"]; if date ${zone} :matches "date" "${p}" "*" { reject "\${0}"; }`, m);
      return (r.actions[0] as Extract<SieveAction, { type: 'reject' }>).reason;
    };
    assert.equal(await part('year'), '2007');
    assert.equal(await part('month'), '01');
    assert.equal(await part('day'), '08');
    assert.equal(await part('date'), '2007-01-08');
    assert.equal(await part('julian'), '54108');
    assert.equal(await part('hour'), '01');
    assert.equal(await part('minute'), '05');
    assert.equal(await part('second'), '32');
    assert.equal(await part('time'), '01:05:32');
    assert.equal(await part('iso8601'), '2007-01-08T01:05:32+01:00');
    assert.equal(await part('std11'), 'Mon, 08 Jan 2007 01:05:32 +0100');
    assert.equal(await part('zone'), '+0100');
    assert.equal(await part('weekday'), '1');
    assert.equal(await part('zone', ':originalzone'), '-0100');
    assert.equal(await part('iso8601', ''), '2007-01-08T00:05:32Z');
  });

  test('§4: no field, or one that is not a valid date (February 29th 2023), does not match', async () => {
    const s = 'require "date"; if date :contains "date" "year" "" { discard; }';
    assert.equal(await fires(s, ['Date: Wed, 29 Feb 2023 10:00:00 +0000', '', 'b']), false);
    assert.equal(await fires(s, ['Date: Thu, 29 Feb 2024 10:00:00 +0000', '', 'b']), true);
    assert.equal(await fires(s, ['Date: whenever', '', 'b']), false);
    assert.equal(await fires(s, ['Subject: none', '', 'b']), false);
  });

  test('§5.1 currentdate examples', async () => {
    const at = (iso: string) => ({ env: { now: new Date(iso) } });
    const pager = 'require ["date", "relational"]; if anyof(currentdate :is "weekday" "0", currentdate :is "weekday" "6", currentdate :value "lt" "hour" "09", currentdate :value "ge" "hour" "17") { redirect "pager@example.com"; }';
    assert.deepEqual(summary(await run(pager, ['', 'b'], at('2026-12-01T20:00:00Z'))), ['redirect:pager@example.com']);
    assert.deepEqual(summary(await run(pager, ['', 'b'], at('2026-12-01T12:00:00Z'))), ['keep']);
    const away = 'require ["date", "relational", "vacation"]; if allof(currentdate :value "ge" "date" "2007-06-30", currentdate :value "le" "date" "2007-07-07") { vacation :days 7 "I\'m away during the first week in July."; }';
    assert.deepEqual(summary(await run(away, ['', 'b'], at('2007-07-02T12:00:00Z'))), ['vacation:I\'m away during the first week in July.', 'keep']);
    assert.deepEqual(summary(await run(away, ['', 'b'], at('2007-07-08T12:00:00Z'))), ['keep']);
    const month = 'require ["date", "variables", "fileinto"]; if currentdate :matches "month" "*" { set "month" "${1}"; } if currentdate :matches "year" "*" { set "year" "${1}"; } fileinto "${month}-${year}";';
    assert.deepEqual(summary(await run(month, ['', 'b'], at('2026-03-04T05:06:07Z'))), ['fileinto:03-2026']);
    const r = await run('require ["variables", "date", "editheader"]; if currentdate :matches "std11" "*" { addheader "Processing-date" "${0}"; }', ['', 'b'], at('2026-03-04T05:06:07Z'));
    assert.deepEqual(r.editedHeaders, [{ name: 'Processing-date', value: 'Wed, 04 Mar 2026 05:06:07 +0000' }]);
  });

  test('§6 :index and :last count the named fields together; :last needs :index', async () => {
    const m = ['Received: from a; Tue, 1 Dec 2026 10:00:00 +0000', 'Received: from b; Mon, 26 Feb 2007 08:00:00 -0500', 'X-A: one', 'X-B: two', 'X-A: three', '', 'b'];
    const s = 'require ["date", "relational", "index"]; if date :value "gt" :index 2 :zone "-0500" "received" "iso8601" "2007-02-26T09:00:00-05:00" { redirect "aftercutoff@example.org"; }';
    assert.deepEqual(summary(await run(s, m)), ['keep']);
    assert.equal(await fires('require "index"; if header :index 2 :is ["X-A", "X-B"] "three" { discard; }', m), true);
    assert.equal(await fires('require "index"; if header :index 3 :is ["X-A", "X-B"] "two" { discard; }', m), true);
    assert.equal(await fires('require "index"; if header :index 1 :last :is "X-A" "three" { discard; }', m), true);
    assert.equal(await fires('require "index"; if header :index 4 :is "X-A" "" { discard; }', m), false);
    assert.match(compileError('require "index"; if header :last "X-A" "x" { keep; }').message, /:last needs :index/);
    assert.match(compileError('require "date"; if date :zone "CET" "date" "year" "2026" { keep; }').message, /invalid :zone/);
    assert.match(compileError('require "date"; if date "date" "fortnight" "1" { keep; }').message, /unknown date part/);
  });
});

describe('include (RFC 6609)', () => {
  const scripts = {
    'personal:always_allow': 'if address :is "from" "boss@example.com" { keep; } elsif address :is "from" "ceo@example.com" { keep; }',
    'personal:spam_tests': 'require ["reject"]; if header :contains "Subject" "XXXX" { reject "Subject XXXX is unacceptable."; } elsif address :is "from" "money@example.com" { reject "Mail from this sender is unwelcome."; }',
    'personal:mailing_lists': 'require ["fileinto"]; if header :is "List-ID" "sieve.ietf.org" { fileinto "lists.sieve"; } elsif header :is "List-ID" "ietf-imapext.imc.org" { fileinto "lists.imapext"; }',
    'global:spam_tests': 'require ["reject"]; if anyof (header :contains "Subject" "$$", header :contains "Subject" "Make money") { reject "No thank you."; }',
  };
  const main = 'require ["include"]; include :personal "always_allow"; include :global "spam_tests"; include :personal "spam_tests"; include :personal "mailing_lists";';

  test('§3.2 the four-script example', async () => {
    assert.deepEqual(summary(await run(main, ['From: x@example.org', 'Subject: Make money now', '', 'b'], { scripts })), ['reject:No thank you.']);
    assert.deepEqual(summary(await run(main, ['From: x@example.org', 'List-ID: sieve.ietf.org', '', 'b'], { scripts })), ['fileinto:lists.sieve']);
    assert.deepEqual(summary(await run(main, ['From: boss@example.com', '', 'b'], { scripts })), ['keep']);
  });

  test('§3.4.1 global variables shared with an included script; locals stay private', async () => {
    const s = `require ["fileinto", "include", "variables", "relational"];
      global "test";
      global "test_mailbox";
      set "test" "$$";
      include "subject_tests";
      set "test" "Make money";
      include "subject_tests";
      if string :count "eq" "\${test_mailbox}" "1" { fileinto "\${test_mailbox}"; stop; }`;
    const sub = { 'personal:subject_tests': 'require ["include", "variables"]; global ["test", "test_mailbox"]; if header :contains "Subject" "${test}" { set "test_mailbox" "spam-${test}"; }' };
    assert.deepEqual(summary(await run(s, ['Subject: Make money fast', '', 'b'], { scripts: sub })), ['fileinto:spam-Make money']);
    assert.deepEqual(summary(await run(s, ['Subject: hello', '', 'b'], { scripts: sub })), ['keep']);
    const priv = { 'personal:p': 'require "variables"; set "x" "inner";' };
    const r = await run('require ["include", "variables", "reject"]; set "x" "outer"; include "p"; reject "${x}";', ['', 'b'], { scripts: priv });
    assert.deepEqual(summary(r), ['reject:outer']);
  });

  test('§3.4.2 the "global." namespace is the same variable as a declared global', async () => {
    const s = 'require ["variables", "include", "vacation"]; global "i_am_on_vacation"; set "global.i_am_on_vacation" "1"; if string :is "${i_am_on_vacation}" "1" { vacation "It\'s true, I am on vacation."; }';
    assert.deepEqual(summary(await run(s, ['', 'b'])), ["vacation:It's true, I am on vacation.", 'keep']);
    assert.match(compileError('require "variables"; set "global.x" "1";').message, /needs require "include"/);
    assert.match(compileError('require "include"; global "x";').message, /needs require "variables"/);
  });

  test('return ends the included script only; stop ends all; return in the main script is stop (§3.3)', async () => {
    const scripts2 = { 'personal:r': 'require "include"; return; discard;', 'personal:s': 'stop;' };
    assert.deepEqual(summary(await run('require "include"; include "r"; redirect "a@example.net";', ['', 'b'], { scripts: scripts2 })), ['redirect:a@example.net']);
    assert.deepEqual(summary(await run('require "include"; include "s"; redirect "a@example.net";', ['', 'b'], { scripts: scripts2 })), ['keep']);
    assert.deepEqual(summary(await run('require "include"; return; discard;', ['', 'b'])), ['keep']);
  });

  test('missing scripts, :optional, :once, recursion and depth (§3.1, §3.2)', async () => {
    await assert.rejects(run('require "include"; include "nope";', ['', 'b']), (e: unknown) => e instanceof SieveRuntimeError && /does not exist/.test(e.message));
    assert.deepEqual(summary(await run('require "include"; include :optional "nope"; discard;', ['', 'b'])), ['discard']);
    const rec = { 'personal:a': 'require "include"; include "b";', 'personal:b': 'require "include"; include "a";' };
    await assert.rejects(run('require "include"; include "a";', ['', 'b'], { scripts: rec }), /includes itself/);
    const once = { 'personal:a': 'require ["include", "fileinto"]; fileinto "A"; include :once "b";', 'personal:b': 'require ["include", "fileinto"]; fileinto "B"; include :once "a";' };
    assert.deepEqual(summary(await run('require "include"; include :once "a";', ['', 'b'], { scripts: once })), ['fileinto:A', 'fileinto:B']);
    const deep: Record<string, string> = {};
    for (let i = 0; i < 20; i++) deep[`personal:d${i}`] = `require "include"; include "d${i + 1}";`;
    await assert.rejects(run('require "include"; include "d0";', ['', 'b'], { scripts: deep }), /nested deeper than 10/);
    await assert.rejects(run('require "include"; include "bad";', ['', 'b'], { scripts: { 'personal:bad': 'fileinto "x";' } }), /has errors: line 1: command 'fileinto' needs require/);
    assert.match(compileError('require "include"; include "../etc/passwd";').message, /invalid script name/);
  });

  test('global after set of the same name is an error (§3.4.1)', async () => {
    await assert.rejects(run('require ["include", "variables"]; set "a" "1"; global "a";', ['', 'b']), /already set as a local variable/);
  });
});

describe('editheader (RFC 5293)', () => {
  test('§4 addheader puts the field first, :last at the end; later tests see it (§7)', async () => {
    const s = 'require ["editheader", "fileinto"]; if not header :contains "X-Sieve-Filtered" ["<kim@job.example.com>", "<kim@home.example.com>"] { addheader "X-Sieve-Filtered" "<kim@job.example.com>"; redirect "kim@home.example.com"; } addheader :last "X-Last" "z"; if header :contains "X-Hello" "World" { fileinto "no"; } addheader "X-Hello" "World"; if header :contains "X-Hello" "World" { fileinto "international"; }';
    const r = await run(s, ['Subject: s', '', 'b']);
    assert.deepEqual(summary(r), ['redirect:kim@home.example.com', 'fileinto:international']);
    assert.deepEqual(r.editedHeaders, [
      { name: 'X-Hello', value: 'World' },
      { name: 'X-Sieve-Filtered', value: '<kim@job.example.com>' },
      { name: 'Subject', value: 's' },
      { name: 'X-Last', value: 'z' },
    ]);
    // §7: each action has the header as it was when it ran
    const redirect = r.actions[0] as Extract<SieveAction, { type: 'redirect' }>;
    assert.deepEqual(redirect.headers, [
      { name: 'X-Sieve-Filtered', value: '<kim@job.example.com>' },
      { name: 'Subject', value: 's' },
    ]);
  });

  test('§5 deleteheader: all, :index, :last, value patterns; §7 index examples', async () => {
    const m = ['X-Hello: 1', 'Delivered-To: alice@example.com', 'X-Hello: 2', 'Delivered-To: bob@example.com', 'X-Hello: 3', '', 'b'];
    const names = async (s: string) => (await run(`require ["editheader", "index"]; ${s}`, m)).editedHeaders?.map((f) => `${f.name}:${f.value}`);
    assert.deepEqual(await names('addheader "X-Hello" "World"; deleteheader :index 1 "X-Hello";'), ['X-Hello:1', 'Delivered-To:alice@example.com', 'X-Hello:2', 'Delivered-To:bob@example.com', 'X-Hello:3']);
    assert.deepEqual(await names('deleteheader :index 1 "X-Hello"; deleteheader :index 2 "X-Hello";'), ['Delivered-To:alice@example.com', 'X-Hello:2', 'Delivered-To:bob@example.com']);
    assert.deepEqual(await names('deleteheader :index 1 :contains "Delivered-To" "bob@example.com";'), ['X-Hello:1', 'Delivered-To:alice@example.com', 'X-Hello:2', 'Delivered-To:bob@example.com', 'X-Hello:3']);
    assert.deepEqual(await names('deleteheader :contains "Delivered-To" "bob@example.com";'), ['X-Hello:1', 'Delivered-To:alice@example.com', 'X-Hello:2', 'X-Hello:3']);
    assert.deepEqual(await names('deleteheader :index 1 :last "x-hello";'), ['X-Hello:1', 'Delivered-To:alice@example.com', 'X-Hello:2', 'Delivered-To:bob@example.com']);
    assert.deepEqual(await names('deleteheader "X-HELLO";'), ['Delivered-To:alice@example.com', 'Delivered-To:bob@example.com']);
    assert.deepEqual(await names('deleteheader :index 9 "X-Hello";'), ['X-Hello:1', 'Delivered-To:alice@example.com', 'X-Hello:2', 'Delivered-To:bob@example.com', 'X-Hello:3']);
    assert.match(compileError('require "editheader"; deleteheader :last "X-Hello";').message, /:last needs :index/);
    assert.match(compileError('require "editheader"; addheader "Bad Name" "x";').message, /invalid header field name/);
  });

  test('§6 Received and Auto-Submitted cannot be deleted (silently); Subject can', async () => {
    const r = await run('require "editheader"; deleteheader "Received"; deleteheader "Auto-Submitted"; deleteheader "Subject"; addheader "Subject" "new";', ['Received: x', 'Auto-Submitted: auto-replied', 'Subject: old', '', 'b']);
    assert.deepEqual(r.editedHeaders, [
      { name: 'Subject', value: 'new' },
      { name: 'Received', value: 'x' },
      { name: 'Auto-Submitted', value: 'auto-replied' },
    ]);
  });

  test('§7 keep twice with an edit in between files one message; non-ASCII values become encoded words', async () => {
    const r = await run('require "editheader"; keep; addheader "X-Flavor" "vanillé"; keep;', ['', 'b']);
    assert.deepEqual(summary(r), ['keep']);
    assert.match(r.editedHeaders![0].value, /^=\?UTF-8\?Q\?vanill=C3=A9\?=$/);
  });

  test('applyEditedHeaders writes the edited header before the original body', () => {
    const raw = mail(['Subject: old', 'X-A: 1', '', 'body line', '']);
    const out = applyEditedHeaders(raw, [{ name: 'X-B', value: 'two' }, { name: 'Subject', value: 'new ' + 'w'.repeat(90) + ' end' }]);
    // folded at blanks to stay within 78 characters where it can (RFC 5322 §2.1.1)
    assert.equal(out.toString(), `X-B: two\r\nSubject: new\r\n ${'w'.repeat(90)}\r\n end\r\n\r\nbody line\r\n`);
  });
});

describe('vacation (RFC 5230) and vacation-seconds (RFC 6131)', () => {
  test('§4.8 example: :days and :addresses; the implicit keep stays (§4.7)', async () => {
    const r = await run(`require "vacation";
      vacation :days 23 :addresses ["tjs@example.edu", "ts4z@landru.example.edu"]
      "I'm away until October 19.
If it's an emergency, call 911, I guess." ;`, ['', 'b']);
    assert.deepEqual(summary(r), ["vacation:I'm away until October 19.\r\nIf it's an emergency, call 911, I guess.", 'keep']);
    const v = r.actions[0] as Extract<SieveAction, { type: 'vacation' }>;
    assert.equal(v.periodSeconds, 23 * 86400);
    assert.deepEqual(v.addresses, ['tjs@example.edu', 'ts4z@landru.example.edu']);
    assert.equal(v.mime, false);
    assert.match(v.handle, /^[0-9a-f]{32}$/);
  });

  test('§4.8 mingled with redirect', async () => {
    const s = 'require "vacation"; if header :contains "from" "boss@example.edu" { redirect "pleeb@isp.example.org"; } else { vacation "Sorry, I\'m away, I\'ll read your\nmessage when I get around to it."; }';
    assert.deepEqual(summary(await run(s, ['From: boss@example.edu', '', 'b'])), ['redirect:pleeb@isp.example.org']);
    assert.equal(summary(await run(s, ['From: x@example.edu', '', 'b']))[0].startsWith('vacation:Sorry'), true);
  });

  test('§4.2 handles: different reasons differ, :handle joins them, and variables do not change the synthesised one', async () => {
    const s = 'require "vacation"; if header :contains "subject" "cyrus" { vacation "I\'m out -- send mail to cyrus-bugs"; } else { vacation "I\'m out -- call me at +1 304 555 0123"; }';
    const h = async (script: string, subject: string) => ((await run(script, [`Subject: ${subject}`, '', 'b'])).actions[0] as Extract<SieveAction, { type: 'vacation' }>).handle;
    assert.notEqual(await h(s, 'Cyrus bug'), await h(s, 'come over for dinner'));
    const handle = 'require "vacation"; if header :contains "subject" "lunch" { vacation :handle "ran-away" "I\'m out and can\'t meet for lunch"; } else { vacation :handle "ran-away" "I\'m out"; }';
    assert.equal(await h(handle, 'lunch?'), 'ran-away');
    assert.equal(await h(handle, 'dinner?'), 'ran-away');
    const vars = 'require ["vacation", "variables"]; if header :matches "subject" "*" { vacation :subject "Automatic response to: ${1}" "I\'m away -- send mail to foo in my absence"; }';
    assert.equal(await h(vars, 'one'), await h(vars, 'two'));
    const r = await run(vars, ['Subject: one', '', 'b']);
    assert.equal((r.actions[0] as Extract<SieveAction, { type: 'vacation' }>).subject, 'Automatic response to: one');
  });

  test('§4.1 :days below 1 is 1, the default is 7; RFC 6131 :seconds, 0 allowed', async () => {
    const p = async (args: string, req = '"vacation"') => ((await run(`require ${req}; vacation ${args} "away";`, ['', 'b'])).actions[0] as Extract<SieveAction, { type: 'vacation' }>).periodSeconds;
    assert.equal(await p(''), 7 * 86400);
    assert.equal(await p(':days 0'), 86400);
    assert.equal(await p(':seconds 1800 :addresses ["tjs@example.edu"]', '["vacation-seconds"]'), 1800);
    assert.equal(await p(':handle "auto-resp" :seconds 0', '["vacation", "vacation-seconds"]'), 0);
    assert.match(compileError('require "vacation"; vacation :seconds 10 "x";').message, /needs require "vacation-seconds"/);
    assert.match(compileError('require ["vacation", "vacation-seconds"]; vacation :days 1 :seconds 10 "x";').message, /cannot be used with/);
  });

  test('§4.3/§4.4 :subject, :from (checked), :mime', async () => {
    const r = await run('require "vacation"; vacation :subject "Gone" :from "Me <me@example.com>" :mime text:\nContent-Type: text/plain\n\nbye\n.\n;', ['', 'b']);
    const v = r.actions[0] as Extract<SieveAction, { type: 'vacation' }>;
    assert.deepEqual([v.subject, v.from, v.mime, v.reason], ['Gone', 'Me <me@example.com>', true, 'Content-Type: text/plain\r\n\r\nbye\r\n']);
    assert.match(compileError('require "vacation"; vacation :from "not an address" "x";').message, /invalid :from/);
  });

  test('§4.7 two vacation actions are an error', async () => {
    await assert.rejects(run('require "vacation"; vacation "a"; vacation "b";', ['', 'b']), /only one vacation/);
  });
});

describe('duplicate (RFC 7352)', () => {
  test('§3.2 the three equivalent forms find the same entry', async () => {
    const forms = [
      'require "duplicate"; if duplicate { discard; }',
      'require "duplicate"; if duplicate :header "message-id" { discard; }',
      'require ["duplicate", "variables"]; if header :matches "message-id" "*" { if duplicate :uniqueid "${0}" { discard; } }',
    ];
    const m = ['Message-ID: <abc@example.com>', '', 'b'];
    const ids = new Set<string>();
    for (const f of forms) {
      const r = await run(f, m);
      assert.deepEqual(summary(r), ['keep'], f);
      for (const d of r.duplicateIds) ids.add(d.id);
    }
    assert.equal(ids.size, 1);
    for (const f of forms) assert.deepEqual(summary(await run(f, m, { seen: ids })), ['discard'], f);
  });

  test(':handle separates entries; :seconds and :last reach the caller; no Message-ID is false and records nothing', async () => {
    const m = ['Message-ID: <abc@example.com>', '', 'b'];
    const a = await run('require "duplicate"; if duplicate :handle "a" :seconds 60 :last { discard; }', m);
    const b = await run('require "duplicate"; if duplicate :handle "b" { discard; }', m);
    assert.notEqual(a.duplicateIds[0].id, b.duplicateIds[0].id);
    assert.deepEqual([a.duplicateIds[0].seconds, a.duplicateIds[0].last], [60, true]);
    assert.deepEqual([b.duplicateIds[0].seconds, b.duplicateIds[0].last], [7 * 86400, false]);
    const none = await run('require "duplicate"; if duplicate { discard; }', ['Subject: no id', '', 'b']);
    assert.deepEqual([summary(none), none.duplicateIds], [['keep'], []]);
    const zero = await run('require "duplicate"; if duplicate :seconds 0 { discard; }', m, { seen: new Set(a.duplicateIds.map((d) => d.id)) });
    assert.deepEqual([summary(zero), zero.duplicateIds], [['keep'], []]);
  });

  test('§3: the same id tested twice in one run gives the same answer (not "seen")', async () => {
    const r = await run('require ["duplicate", "fileinto"]; if duplicate { discard; } if duplicate { fileinto "dup"; }', ['Message-ID: <x@y>', '', 'b']);
    assert.deepEqual(summary(r), ['keep']);
    assert.equal(r.duplicateIds.length, 1);
    assert.match(compileError('require "duplicate"; if duplicate :header "a" :uniqueid "b" { keep; }').message, /cannot be used with/);
  });
});
