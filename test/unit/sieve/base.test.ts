/**
 * The base language (RFC 5228): its §9 full example, the examples of each test, comparators and match types,
 * the action rules of §2.10 (implicit keep, duplicates), and the run-time limits that make a broken or hostile
 * script a SieveRuntimeError (the deliverer then keeps the message in INBOX).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { compile, execute, buildSieveMessage, SieveRuntimeError } from '../../../src/sieve/index.ts';
import { mail, run, summary } from './run-script.ts';

const RFC5228_EXAMPLE = `#
# Example Sieve Filter
# Declare any optional features or extension used by the script
#
require ["fileinto"];

#
# Handle messages from known mailing lists
# Move messages from IETF filter discussion list to filter mailbox
#
if header :is "Sender" "owner-ietf-mta-filters@imc.org"
        {
        fileinto "filter";  # move to "filter" mailbox
        }
#
# Keep all messages to or from people in my company
#
elsif address :DOMAIN :is ["From", "To"] "example.com"
        {
        keep;               # keep in "In" mailbox
        }

#
# Try and catch unsolicited email.  If a message is not to me,
# or it contains a subject known to be spam, file it away.
#
elsif anyof (NOT address :all :contains
               ["To", "Cc", "Bcc"] "me@example.com",
             header :matches "subject"
               ["*make*money*fast*", "*university*dipl*mas*"])
        {
        fileinto "spam";   # move to "spam" mailbox
        }
else
        {
        # Move all other (non-company) mail to "personal"
        # mailbox.
        fileinto "personal";
        }
`;

describe('RFC 5228 §9 full example', () => {
  test('the mailing list goes to "filter"', async () => {
    assert.deepEqual(summary(await run(RFC5228_EXAMPLE, ['Sender: owner-ietf-mta-filters@imc.org', 'From: x@other.org', '', 'b'])), ['fileinto:filter']);
  });
  test('company mail is kept', async () => {
    assert.deepEqual(summary(await run(RFC5228_EXAMPLE, ['From: Boss <boss@EXAMPLE.com>', 'To: me@other.org', '', 'b'])), ['keep']);
  });
  test('mail not to me is spam', async () => {
    assert.deepEqual(summary(await run(RFC5228_EXAMPLE, ['From: x@other.org', 'To: you@other.org', '', 'b'])), ['fileinto:spam']);
  });
  test('a known spam subject is spam even when it is to me', async () => {
    const m = ['From: x@other.org', 'To: me@example.org', 'Cc: me@example.com', 'Subject: How to MAKE easy money, FAST!', '', 'b'];
    assert.deepEqual(summary(await run(RFC5228_EXAMPLE, m)), ['fileinto:spam']);
  });
  test('the rest goes to "personal"', async () => {
    assert.deepEqual(summary(await run(RFC5228_EXAMPLE, ['From: x@other.org', 'To: other@x.org', 'Cc: me@example.com', 'Subject: lunch', '', 'b'])), ['fileinto:personal']);
  });
});

describe('RFC 5228 tests', () => {
  test('address :is :all "from" (§5.1) ignores the phrase and comments; groups are looked into', async () => {
    const s = 'if address :is :all "from" "tim@example.com" { discard; }';
    assert.deepEqual(summary(await run(s, ['From: "Tim (the boss)" <tim@example.com> (comment)', '', 'b'])), ['discard']);
    assert.deepEqual(summary(await run(s, ['From: friends: a@example.org, tim@example.com;', '', 'b'])), ['discard']);
    assert.deepEqual(summary(await run(s, ['From: tim@example.org', '', 'b'])), ['keep']);
  });

  test('address parts :localpart and :domain (§2.7.4); domains compare case-insensitively by default', async () => {
    const m = ['To: Coyote <coyote@ACME.Example.COM>', '', 'b'];
    assert.deepEqual(summary(await run('if address :localpart "to" "COYOTE" { discard; }', m)), ['discard']);
    assert.deepEqual(summary(await run('if address :domain "to" "acme.example.com" { discard; }', m)), ['discard']);
    assert.deepEqual(summary(await run('if address :domain :comparator "i;octet" "to" "acme.example.com" { discard; }', m)), ['keep']);
  });

  test('allof and anyof (§5.2, §5.3) follow their truth tables and stop early', async () => {
    const cases: [string, boolean][] = [
      ['allof (false, false)', false],
      ['allof (false, true)', false],
      ['allof (true, true)', true],
      ['anyof (false, false)', false],
      ['anyof (false, true)', true],
      ['anyof (true, true)', true],
    ];
    for (const [t, want] of cases) assert.deepEqual(summary(await run(`if ${t} { discard; }`, ['', 'b'])), want ? ['discard'] : ['keep'], t);
  });

  test('exists (§5.5): every header must exist', async () => {
    const s = 'if not exists ["From","Date"] { discard; }';
    assert.deepEqual(summary(await run(s, ['From: a@b.c', '', 'x'])), ['discard']);
    assert.deepEqual(summary(await run(s, ['From: a@b.c', 'Date: Mon, 1 Dec 2026 10:00:00 +0000', '', 'x'])), ['keep']);
  });

  test('header (§5.7): the X-Caffeine examples', async () => {
    const m = ['X-Caffeine: C8H10N4O2', '', 'b'];
    const cases: [string, boolean][] = [
      ['header :is ["X-Caffeine"] [""]', false],
      ['header :contains ["X-Caffeine"] [""]', true],
      ['header :contains ["X-Caffeine"] ["C8H10N4O2"]', true],
      ['header :is ["X-Caffeine"] ["C8H10N4O2"]', true],
      ['header :is ["x-caffeine"] ["c8h10n4o2"]', true],
      ['header :comparator "i;octet" :is ["X-Caffeine"] ["c8h10n4o2"]', false],
      ['header :contains ["X-Decaf"] [""]', false],
    ];
    for (const [t, want] of cases) assert.deepEqual(summary(await run(`if ${t} { discard; }`, m)), want ? ['discard'] : ['keep'], t);
  });

  test('header values are unfolded, trimmed and RFC 2047-decoded (§2.7.2)', async () => {
    const m = ['Subject: =?UTF-8?Q?caf=C3=A9?=', '  au lait   ', '', 'b'];
    // unfolding removes the CRLF only (RFC 5322 §2.2.3): the blanks of the continuation line stay
    assert.deepEqual(summary(await run('if header :is "subject" "café  au lait" { discard; }', m)), ['discard']);
  });

  test('size (§5.9): :over 500K; neither :over nor :under holds at the exact size', async () => {
    const m = mail(['Subject: x', '', 'y'.repeat(600 * 1024)]);
    assert.deepEqual(summary(await run('if size :over 500K { discard; }', m)), ['discard']);
    const exact = mail(['S: x', '', 'abc']);
    assert.deepEqual(summary(await run(`if anyof (size :over ${exact.length}, size :under ${exact.length}) { discard; }`, exact)), ['keep']);
  });

  test('envelope (§5.4): from and to, the null reverse-path is "" whatever the address part', async () => {
    const s = 'require "envelope"; if envelope :all :is "from" "tim@example.com" { discard; }';
    assert.deepEqual(summary(await run(s, ['', 'b'], { envelope: { from: 'tim@example.com' } })), ['discard']);
    const nul = 'require "envelope"; if envelope :domain :is "from" "" { discard; }';
    assert.deepEqual(summary(await run(nul, ['', 'b'], { envelope: { from: '' } })), ['discard']);
    const to = 'require "envelope"; if envelope :localpart :is "TO" "me" { discard; }';
    assert.deepEqual(summary(await run(to, ['', 'b'])), ['discard']);
  });
});

describe('comparators and match types (RFC 5228 §2.7, RFC 4790)', () => {
  test(':matches with "*", "?" and "\\" escapes', async () => {
    const m = ['Subject: a*b?c', '', 'x'];
    const cases: [string, boolean][] = [
      ['"a*"', true],
      ['"?*?"', true],
      ['"a\\\\*b\\\\?c"', true],
      ['"a\\\\*b\\\\?"', false],
      ['"A?B*"', true],
      ['"a?c"', false],
      ['"*"', true],
    ];
    for (const [k, want] of cases) assert.deepEqual(summary(await run(`if header :matches "subject" ${k} { discard; }`, m)), want ? ['discard'] : ['keep'], k);
  });

  test('"?" matches one character, not one octet', async () => {
    assert.deepEqual(summary(await run('if header :matches "subject" "caf?" { discard; }', ['Subject: café', '', 'x'])), ['discard']);
  });

  test('i;ascii-numeric: leading digits compare as numbers, non-numbers are equal to each other and above all numbers', async () => {
    const req = 'require ["relational", "comparator-i;ascii-numeric"];';
    const t = async (v: string, rel: string, key: string) =>
      summary(await run(`${req} if header :value "${rel}" :comparator "i;ascii-numeric" "x-n" "${key}" { discard; }`, [`X-N: ${v}`, '', 'b']))[0] === 'discard';
    assert.equal(await t('10', 'gt', '9'), true);
    assert.equal(await t('010', 'eq', '10'), true);
    assert.equal(await t('12abc', 'eq', '12'), true);
    assert.equal(await t('abc', 'gt', '99999'), true);
    assert.equal(await t('abc', 'eq', 'xyz'), true);
  });

  test('a pathological :matches pattern ends as a limit error instead of hanging', async () => {
    // O(pattern × value²) even with the failed positions memoised: the work budget turns it into an error.
    const value = 'a'.repeat(3000);
    const pattern = '*a'.repeat(60) + '*b';
    const r = compile(`if header :matches "subject" "${pattern}" { discard; }`);
    assert.ok(r.ok);
    const msg = buildSieveMessage(mail([`Subject: ${value}`, '', 'b']), { from: 'a@b.c', to: 'me@example.com' });
    const env = { mailboxExists: () => true, loadInclude: () => null, duplicateSeen: () => false };
    await assert.rejects(execute(r.script, msg, env), (e: unknown) => e instanceof SieveRuntimeError && /needed too much work/.test(e.message) && e.line === 1);
    // the same shape on a short value is answered
    const short = buildSieveMessage(mail([`Subject: ${'a'.repeat(80)}`, '', 'b']), { from: 'a@b.c', to: 'me@example.com' });
    assert.deepEqual(summary(await execute(r.script, short, env)), ['keep']);
  });
});

describe('actions (RFC 5228 §2.10)', () => {
  test('no action: the implicit keep files the message into INBOX', async () => {
    assert.deepEqual(summary(await run('if false { discard; }', ['', 'b'])), ['keep']);
  });

  test('fileinto, redirect and discard cancel the implicit keep; :copy does not (RFC 3894)', async () => {
    assert.deepEqual(summary(await run('require "fileinto"; fileinto "a";', ['', 'b'])), ['fileinto:a']);
    assert.deepEqual(summary(await run('redirect "x@example.net";', ['', 'b'])), ['redirect:x@example.net']);
    assert.deepEqual(summary(await run('discard;', ['', 'b'])), ['discard']);
    assert.deepEqual(summary(await run('require ["copy", "fileinto"]; fileinto :copy "incoming";', ['', 'b'])), ['fileinto:incoming:copy', 'keep']);
    assert.deepEqual(summary(await run('require "copy"; redirect :copy "x@example.net";', ['', 'b'])), ['redirect:x@example.net:copy', 'keep']);
  });

  test('an explicit keep wins over discard (RFC 3894 §1)', async () => {
    assert.deepEqual(summary(await run('keep; discard;', ['', 'b'])), ['keep', 'discard']);
  });

  test('stop ends the script; the implicit keep still applies (§3.3)', async () => {
    assert.deepEqual(summary(await run('stop; discard;', ['', 'b'])), ['keep']);
  });

  test('the same mailbox or address twice is delivered once (§2.10.3), fileinto "INBOX" is the keep', async () => {
    const r = await run('require "fileinto"; fileinto "a"; fileinto "a"; keep; fileinto "INBOX"; redirect "x@example.net"; redirect "X@example.net";', ['', 'b']);
    assert.deepEqual(summary(r), ['fileinto:a', 'keep', 'redirect:x@example.net']);
  });

  test('the action limit and the redirect limit are run-time errors', async () => {
    const many = 'require "fileinto";' + Array.from({ length: 40 }, (_, i) => `fileinto "f${i}";`).join('');
    await assert.rejects(run(many, ['', 'b']), (e: unknown) => e instanceof SieveRuntimeError && /more than 32 actions/.test(e.message) && e.line === 1);
    const redirects = Array.from({ length: 5 }, (_, i) => `redirect "r${i}@example.net";`).join('\n');
    await assert.rejects(run(redirects, ['', 'b']), (e: unknown) => e instanceof SieveRuntimeError && /more than 4 redirects/.test(e.message) && e.line === 5);
    await assert.rejects(run(redirects, ['', 'b'], { env: { limits: { maxRedirects: 2 } } }), /more than 2 redirects/);
  });

  test('the run-time limit stops a script whose environment never answers', async () => {
    const never = new Promise<boolean>(() => {});
    await assert.rejects(
      run('require "mailbox"; if mailboxexists "x" { discard; }', ['', 'b'], { env: { mailboxExists: () => never, limits: { maxRunMs: 50 } } }),
      (e: unknown) => e instanceof SieveRuntimeError && /ran longer than 50 ms/.test(e.message),
    );
  });

  test('an environment failure becomes a SieveRuntimeError at the command that met it', async () => {
    await assert.rejects(
      run('require "mailbox";\nif mailboxexists "x" { discard; }', ['', 'b'], {
        env: {
          mailboxExists: () => {
            throw new Error('store is down');
          },
        },
      }),
      (e: unknown) => e instanceof SieveRuntimeError && e.line === 2 && /store is down/.test(e.message),
    );
  });
});
