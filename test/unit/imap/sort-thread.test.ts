/**
 * SORT and THREAD as pure functions over messages: RFC 5256 base subjects, sort keys with REVERSE and mailbox-order
 * ties, RFC 5957 display names, and the ORDEREDSUBJECT and REFERENCES algorithms with their output syntax.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseSortCriteria, sortMessages, type Sortable } from '../../../src/imap/commands/sort.ts';
import { esearchResponse, orderedSet, parseReturn } from '../../../src/imap/search-return.ts';
import { formatThreads, orderedSubject, references } from '../../../src/imap/commands/thread.ts';
import { ImapError } from '../../../src/imap/command.ts';
import { baseSubject, casemap, keysOf } from '../../../src/imap/message-keys.ts';
import { parseMime } from '../../../src/imap/mime.ts';
import { parseCommand } from '../../../src/imap/parser.ts';

/** Messages numbered 1..n from header blocks; `internal` is the internal date (default: all the same). */
function messages(...specs: { h: string[]; internal?: string; size?: number }[]): Sortable[] {
  return specs.map((s, i) => ({
    seq: i + 1,
    meta: { uid: 101 + i, size: s.size ?? 100, flags: [], internalDate: new Date(s.internal ?? '2008-02-22T21:00:00Z') },
    keys: keysOf(parseMime(Buffer.from(s.h.join('\r\n') + '\r\n\r\nbody\r\n'))),
  }));
}

const sortBy = (msgs: Sortable[], criteria: string) =>
  sortMessages(msgs, parseSortCriteria(parseCommand(Buffer.from(`t SORT ${criteria} UTF-8 ALL\r\n`)).args[0])).map((m) => m.seq);

const threads = (msgs: Sortable[], alg: 'refs' | 'subject' | 'REFS') =>
  formatThreads(alg === 'refs' ? references(msgs) : alg === 'REFS' ? references(msgs, true) : orderedSubject(msgs), (m) => m.seq);

describe('base subject (RFC 5256 §2.1)', () => {
  test('removes Re:, Fwd:, blobs, (fwd) trailers and [fwd: ...] wrappers, and says it was a reply or forward', () => {
    const cases: [string, string, boolean][] = [
      ['a', 'a', false],
      ['[foo] Fwd: [bar] Re: fw: b (fWd)  (fwd)', 'b', true],
      ['Re: [FWD: c]', 'c', true],
      ['[xyz]', '[xyz]', false],
      ['[list] hello', 'hello', false],
      ['=?iso-8859-1?q?_?=', '', false],
      ['Re: =?utf-8?q?b?=', 'b', true],
      ['=?iso-8859-1?q?RE:_C?=', 'C', true],
      ['Ad: Re: Ad: Re: Ad: x', 'Ad: Re: Ad: Re: Ad: x', false],
      ['re: [fwd: [fwd: re: [fwd: babylon]]]', 'babylon', true],
      ['Re[2]:  multiple \t  spaces ', 'multiple spaces', true],
      ['b (a)', 'b (a)', false],
    ];
    for (const [subject, base, reply] of cases) assert.deepEqual(baseSubject(subject), { base, replyOrForward: reply }, subject);
  });

  test('i;unicode-casemap (RFC 5051): titlecase then NFKD; on US-ASCII it is i;ascii-casemap, so "_" sorts after letters', () => {
    assert.ok(Buffer.compare(casemap('_'), casemap('z')) > 0);
    assert.ok(casemap('Caffè').equals(casemap('CAFFÈ')));
    assert.ok(Buffer.compare(casemap('Émile'), casemap('emile')) > 0);
    assert.ok(Buffer.compare(casemap('Émile'), casemap('F')) < 0);
    assert.ok(casemap('ǆ').equals(casemap('ǅ')));
    assert.ok(casemap('Ǆ').equals(casemap('ǆ')));
    assert.ok(!casemap('ß').equals(casemap('SS')));
  });
});

describe('SORT (RFC 5256 §3, RFC 5957)', () => {
  test('SUBJECT by base subject; equal keys keep mailbox order; REVERSE reverses only its key', () => {
    const msgs = messages(
      { h: ['Subject: b'], size: 10 },
      { h: ['Subject: Re: a'], size: 30 },
      { h: ['Subject: A'], size: 20 },
      { h: [] },
      { h: ['Subject: [fwd: b]'], size: 5 },
    );
    assert.deepEqual(sortBy(msgs, '(SUBJECT)'), [4, 2, 3, 1, 5]);
    assert.deepEqual(sortBy(msgs, '(REVERSE SUBJECT)'), [1, 5, 2, 3, 4]);
    assert.deepEqual(sortBy(msgs, '(SUBJECT REVERSE SIZE)'), [4, 2, 3, 1, 5]);
    assert.deepEqual(sortBy(msgs, '(SIZE)'), [5, 1, 3, 2, 4]);
  });

  test('FROM, TO and CC compare the mailbox of the first address; a group counts by its name', () => {
    const msgs = messages(
      { h: ['From: user2@domain2.org', 'Cc: user2@domain2.org (foo bar)'] },
      { h: ['From: "Zed" <user2@domain1.org>', 'Cc: user2: blah@domain1.org;'] },
      { h: ['From: User1@domain1.org', 'Cc: user1@domain1.org'] },
    );
    assert.deepEqual(sortBy(msgs, '(FROM)'), [3, 1, 2]);
    assert.deepEqual(sortBy(msgs, '(CC)'), [3, 1, 2]);
    assert.deepEqual(sortBy(msgs, '(REVERSE FROM)'), [1, 2, 3]);
    assert.deepEqual(sortBy(msgs, '(FROM REVERSE ARRIVAL)'), [3, 1, 2]);
    assert.deepEqual(sortBy(msgs, '(TO)'), [1, 2, 3]);
  });

  test('DATE is the sent date in UTC, or the internal date when there is none; ARRIVAL is the internal date', () => {
    const msgs = messages(
      { h: ['Date: Fri, 22 Feb 2008 00:00:00 +0200'], internal: '2008-02-22T21:00:00Z' },
      { h: ['Date: Fri, 22 Feb 2008 02:00:00 +0200'], internal: '2008-02-22T20:00:00Z' },
      { h: ['Date: Thu, 21 Feb 2008 23:30:00 -0000'], internal: '2008-02-22T19:00:00Z' },
      { h: ['Date: not a date'], internal: '2008-02-21T22:15:00Z' },
    );
    assert.deepEqual(sortBy(msgs, '(DATE)'), [1, 4, 3, 2]);
    assert.deepEqual(sortBy(msgs, '(ARRIVAL)'), [4, 3, 2, 1]);
    assert.deepEqual(sortBy(msgs, '(REVERSE DATE)'), [2, 3, 4, 1]);
  });

  test('DISPLAYFROM and DISPLAYTO use the decoded display name, else the addr-spec, else a group name', () => {
    const msgs = messages(
      { h: ['From: foo bar <a@b.c>', 'To: z: aa@aa.org;'] },
      { h: ['From: b@c.d', 'To: =?iso-8859-1?q?foo_aar?= <e@f.g>'] },
      { h: ['From: d', 'To: b@c.d'] },
      { h: ['From: =?iso-8859-1?q?foo_aar?= <e@f.g>', 'To: a: xx@xx.org, yy@yy.org;'] },
    );
    assert.deepEqual(sortBy(msgs, '(DISPLAYFROM)'), [2, 3, 4, 1]);
    assert.deepEqual(sortBy(msgs, '(DISPLAYTO)'), [4, 3, 2, 1]);
  });

  test('sort criteria syntax: a non-empty list of known keys, REVERSE before a key', () => {
    for (const bad of ['()', 'SUBJECT', '(REVERSE)', '(SUBJECT REVERSE)', '(REVERSE REVERSE DATE)', '(FOO)']) {
      assert.throws(() => parseSortCriteria(parseCommand(Buffer.from(`t SORT ${bad} UTF-8 ALL\r\n`)).args[0]), (e: unknown) => e instanceof ImapError && e.status === 'BAD', bad);
    }
  });
});

describe('ESORT (RFC 5267 §3)', () => {
  test('MIN and MAX are the ends of the sort order, ALL keeps the order with ranges only for ascending runs', () => {
    assert.equal(orderedSet([1, 2, 3, 7, 5, 4, 9, 10]), '1:3,7,5,4,9:10');
    const ret = (text: string) => parseReturn(parseCommand(Buffer.from(`t SORT RETURN ${text} (DATE) UTF-8 ALL\r\n`)).args[1], false);
    const all = ret('(MIN MAX ALL COUNT)');
    assert.equal(esearchResponse('t1', false, [4, 2, 3], all, true), 'ESEARCH (TAG "t1") MIN 4 MAX 3 ALL 4,2:3 COUNT 3');
    assert.equal(esearchResponse('t2', true, [], all, true), 'ESEARCH (TAG "t2") UID COUNT 0');
    assert.equal(esearchResponse('t3', false, [1, 2], ret('()'), true), 'ESEARCH (TAG "t3") ALL 1:2');
    // RFC 5267 §4.4: PARTIAL takes a range of positions (given either way round) and keeps the sort order.
    assert.equal(esearchResponse('t4', false, [5, 3, 4, 2, 1], ret('(PARTIAL 4:2)'), true), 'ESEARCH (TAG "t4") PARTIAL (2:4 3:4,2)');
    assert.equal(esearchResponse('t5', false, [5, 3], ret('(PARTIAL 3:9 COUNT)'), true), 'ESEARCH (TAG "t5") PARTIAL (3:9 NIL) COUNT 2');
    for (const bad of ['(PARTIAL)', '(PARTIAL 1)', '(PARTIAL 1:*)', '(PARTIAL *:1)', '(PARTIAL 0:3)', '(PARTIAL 1:2 ALL)', '(SAVE)']) {
      assert.throws(() => ret(bad), (e: unknown) => e instanceof ImapError && e.status === 'BAD', bad);
    }
  });
});

describe('THREAD (RFC 5256 §3)', () => {
  test('ORDEREDSUBJECT: one thread per base subject, oldest first, the others as its replies; threads by first date', () => {
    const msgs = messages(
      { h: ['Subject: a', 'Date: Fri, 22 Feb 2008 22:00:10 +0200'] },
      { h: ['Subject: b', 'Date: Fri, 22 Feb 2008 22:00:09 +0200'] },
      { h: ['Subject: Re: a', 'Date: Fri, 22 Feb 2008 22:00:08 +0200'] },
      { h: ['Subject: b', 'Date: Fri, 22 Feb 2008 22:00:07 +0200'] },
      { h: ['Subject: a'], internal: '2008-02-22T20:00:30Z' },
      { h: ['Subject: c'] },
      { h: ['Subject: c', 'Date: Sat, 23 Feb 2008 10:00:00 +0000'] },
    );
    assert.equal(threads(msgs, 'subject'), '(4 2)(3 (1)(5))(6 7)');
  });

  test('REFERENCES: a truncated References does not win over the message\'s own; loops are not made', () => {
    const msgs = messages(
      { h: ['Message-ID: <a@b>'], internal: '2008-02-22T17:06:23Z' },
      { h: ['Message-Id: <b@b>', 'References: <a@b> <c@b>'], internal: '2008-02-22T15:06:23Z' },
      { h: ['Message-Id: <c@b>', 'References: <b@b>'], internal: '2008-02-22T16:06:25Z' },
    );
    assert.equal(threads(msgs, 'refs'), '(3 2)(1)');
  });

  test('REFERENCES: In-Reply-To when there are no References; a dummy parent with one child disappears', () => {
    const msgs = messages(
      { h: ['Message-ID: <1@b>'], internal: '2008-02-22T17:06:23Z' },
      { h: ['Message-Id: <2@b>', 'In-Reply-To: <1@b>'], internal: '2008-02-22T15:06:23Z' },
      { h: ['Message-Id: <3@b>', 'In-Reply-To: <1@b>'], internal: '2008-02-22T15:06:23Z' },
      { h: ['Message-Id: <4@b>', 'In-Reply-To: <2@b>'], internal: '2008-02-22T15:06:23Z' },
    );
    assert.equal(threads(msgs, 'refs'), '(1 (2 4)(3))');
    // Without <1@b> and <2@b>, <2@b> is a dummy: with one child it is replaced by it, with two it stays.
    const two = messages({ h: ['Message-Id: <3@b>', 'In-Reply-To: <1@b>'] }, { h: ['Message-Id: <4@b>', 'In-Reply-To: <2@b>'] });
    assert.equal(threads(two, 'refs'), '(1)(2)');
    const five = messages(
      { h: ['Message-Id: <3@b>', 'In-Reply-To: <1@b>'] },
      { h: ['Message-Id: <4@b>', 'In-Reply-To: <2@b>'] },
      { h: ['Message-Id: <5@b>', 'In-Reply-To: <2@b>'] },
    );
    assert.equal(threads(five, 'refs'), '(1)((2)(3))');
  });

  test('REFERENCES: a repeated Message-ID is a message of its own; replies to it go to the first one', () => {
    const msgs = messages(
      { h: ['Message-Id: <a@b>'] },
      { h: ['Message-Id: <b@b>', 'References: <a@b>'] },
      { h: ['Message-Id: <c@b>', 'References: <b@b>'] },
      { h: ['Message-Id: <b@b>', 'References: <a@b>'] },
    );
    assert.equal(threads(msgs, 'refs'), '(1 (2 3)(4))');
    assert.equal(threads(messages({ h: ['Message-Id: <a@b>'] }, { h: ['Message-Id: <a@b>'] }), 'refs'), '(1)(2)');
  });

  test('REFERENCES: roots of the same base subject merge; a reply goes under the original, equals under a dummy', () => {
    const reply = messages({ h: ['Message-Id: <a@b>', 'Subject: foo'] }, { h: ['Message-Id: <b@b>', 'References: <c@b>', 'Subject: Re: foo'] });
    assert.equal(threads(reply, 'refs'), '(1 2)');
    const equals = messages({ h: ['Message-Id: <a@b>', 'Subject: foo'] }, { h: ['Message-Id: <b@b>', 'Subject: foo'] }, { h: ['Subject: bar'] });
    assert.equal(threads(equals, 'refs'), '((1)(2))(3)');
    // Dummies with the same subject: their children become siblings.
    const dummies = messages(
      { h: ['References: <x@b>', 'Subject: s'] },
      { h: ['References: <x@b>', 'Subject: s'] },
      { h: ['References: <y@b>', 'Subject: Re: s'] },
      { h: ['References: <y@b>', 'Subject: s'] },
    );
    assert.equal(threads(dummies, 'refs'), '((1)(2)(3)(4))');
  });

  test('REFS: the same links without grouping by subject; threads ordered by their newest message', () => {
    const msgs = messages(
      { h: ['Message-Id: <a@b>', 'Subject: foo'], internal: '2008-02-22T10:00:00Z' },
      { h: ['Message-Id: <b@b>', 'Subject: foo'], internal: '2008-02-22T11:00:00Z' },
      { h: ['Message-Id: <c@b>', 'References: <a@b>', 'Subject: Re: foo'], internal: '2008-02-22T12:00:00Z' },
      { h: ['References: <x@b>'], internal: '2008-02-22T09:00:00Z' },
    );
    assert.equal(threads(msgs, 'refs'), '(4)((1 3)(2))');
    assert.equal(threads(msgs, 'REFS'), '(4)(2)(1 3)');
  });
});
