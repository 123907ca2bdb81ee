/**
 * SEARCH's address and sent-date matching (src/imap/search-match.ts): addresses are compared as parsed addresses,
 * dates as the calendar day the Date: header names (RFC 3501 §6.4.4).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { matches, parseCriteria } from '../../../src/imap/commands/search.ts';
import { parseMime } from '../../../src/imap/mime.ts';
import { parseCommand } from '../../../src/imap/parser.ts';
import { addressSearchText, casemapContains, parseSearchAddresses, sentDay, unicodeCasemap } from '../../../src/imap/search-match.ts';

describe('SEARCH address matching', () => {
  test('comments and spaces inside an angle address do not hide it', () => {
    assert.deepEqual(parseSearchAddresses('<user-from (comment)@ (comment) domain.org>'), [{ name: null, local: 'user-from', domain: 'domain.org' }]);
    assert.equal(addressSearchText('<user-from (comment)@ (comment) domain.org>'), '<user-from@domain.org>');
  });

  test('an old-style trailing comment is the display name; a display name is decoded', () => {
    assert.equal(addressSearchText('user-to@domain.org (RealTo)'), 'RealTo <user-to@domain.org>');
    assert.equal(addressSearchText('"Rossi, Mario" <mario@example.com>'), 'Rossi, Mario <mario@example.com>');
    assert.equal(addressSearchText('=?UTF-8?Q?Caff=C3=A8?= <bar@example.com>'), 'Caffè <bar@example.com>');
  });

  test('groups keep their name and members; an empty group is just its name', () => {
    const v = 'groupname: groupuser1@domain.org, groupuser2@domain.org;, groupname2: groupuser3@domain.org;';
    assert.equal(addressSearchText(v), 'groupname: <groupuser1@domain.org>, <groupuser2@domain.org>;, groupname2: <groupuser3@domain.org>;');
    assert.deepEqual(parseSearchAddresses('undisclosed-recipients:;'), [{ group: 'undisclosed-recipients', members: [] }]);
  });

  test('a route is dropped and a list is split at top-level commas only', () => {
    assert.deepEqual(
      parseSearchAddresses('<@relay.example,@b.example:joe@c.example>, "a,b" <x@y.z>').map((a) => ('local' in a ? `${a.local}@${a.domain}` : '')),
      ['joe@c.example', 'x@y.z'],
    );
  });

  test('FROM matches whole and partial addresses and names, but not a different address', () => {
    const crit = (s: string) => parseCriteria(parseCommand(Buffer.from(`s SEARCH ${s}\r\n`)).args);
    const meta = { uid: 1, size: 10, flags: [], internalDate: new Date() };
    const on = (header: string, s: string) =>
      matches(crit(s), { seq: 1, meta, count: 1, maxUid: 1, tree: parseMime(Buffer.from(`${header}\r\n\r\nbody\r\n`)) });
    assert.equal(on('From: <user-from (comment)@ (comment) domain.org>', 'FROM user-from@domain.org'), true);
    assert.equal(on('From: user-from@domain.org (RealFrom)', 'FROM realfrom'), true);
    assert.equal(on('From: user-from1@domain.org, user-from2@domain.org', 'FROM user-from@domain.org'), false);
    assert.equal(on('From: user-from1@domain.org, user-from2@domain.org', 'FROM ser-from2'), true);
    assert.equal(on('To: groupname:;', 'TO groupname'), true);
    assert.equal(on('To: groupname:;', 'CC groupname'), false);
  });
});

describe('SEARCH sent dates', () => {
  test('the day is the one written in the header, whatever the zone', () => {
    assert.equal(sentDay('Sun, 25 Mar 2007 00:00:00 +0200'), Date.UTC(2007, 2, 25));
    assert.equal(sentDay('Sat, 24 Mar 2007 23:00:00 -1100'), Date.UTC(2007, 2, 24));
    assert.equal(sentDay('25 Mar 2007 01:00 +0300 (EEST)'), Date.UTC(2007, 2, 25));
  });

  test('obsolete forms: no weekday, two- and three-digit years, long month names', () => {
    assert.equal(sentDay('1 Jan 99 10:00:00 GMT'), Date.UTC(1999, 0, 1));
    assert.equal(sentDay('1 Jan 07 10:00:00 GMT'), Date.UTC(2007, 0, 1));
    assert.equal(sentDay('Mon, 1 Jan 107 10:00:00 GMT'), Date.UTC(2007, 0, 1));
    assert.equal(sentDay('Thursday, 5 October 2023 10:00 +0000'), Date.UTC(2023, 9, 5));
  });

  test('a value that is not a date has no day', () => {
    assert.equal(sentDay('yesterday'), undefined);
    assert.equal(sentDay('32 Mar 2007'), undefined);
    assert.equal(sentDay(''), undefined);
  });

  test('SENTON/SENTBEFORE/SENTSINCE compare that day', () => {
    const crit = (s: string) => parseCriteria(parseCommand(Buffer.from(`s SEARCH ${s}\r\n`)).args);
    const meta = { uid: 1, size: 10, flags: [], internalDate: new Date('2020-01-01T00:00:00Z') };
    const tree = parseMime(Buffer.from('Date: Sun, 25 Mar 2007 00:00:00 +0200\r\n\r\nbody\r\n'));
    const on = (s: string) => matches(crit(s), { seq: 1, meta, count: 1, maxUid: 1, tree });
    assert.equal(on('SENTON 25-Mar-2007'), true);
    assert.equal(on('SENTON 24-Mar-2007'), false);
    assert.equal(on('SENTBEFORE 25-Mar-2007'), false);
    assert.equal(on('SENTBEFORE 26-Mar-2007'), true);
    assert.equal(on('SENTSINCE 25-Mar-2007'), true);
    assert.equal(on('SENTSINCE 26-Mar-2007'), false);
  });
});

describe('i;unicode-casemap (RFC 5051)', () => {
  test('case and decomposition are ignored: accents precomposed or combining, ligatures, digraphs', () => {
    assert.equal(unicodeCasemap('caffè'), unicodeCasemap('CAFFÈ'));
    assert.equal(unicodeCasemap('caff\u00e8'), unicodeCasemap('caffe\u0300'));
    // The decomposition is not titlecased again (RFC 5051 §2, Dovecot): the ligature stays lowercase "fi".
    assert.equal(unicodeCasemap('\ufb01le'), 'fiLE');
    assert.equal(unicodeCasemap('\u01c6'), unicodeCasemap('\u01c4'));
    assert.equal(unicodeCasemap('\u01c5'), unicodeCasemap('\u01c4'));
    assert.equal(unicodeCasemap('Straße'), unicodeCasemap('STRAßE'));
  });

  test('only simple mappings: ß is not "ss"; Hangul syllables decompose; Georgian keeps its letters', () => {
    assert.ok(!casemapContains('Strasse', 'ß'));
    assert.ok(!casemapContains('Straße', 'ss'));
    assert.equal(unicodeCasemap('\ud55c'), '\u1112\u1161\u11ab');
    assert.equal(unicodeCasemap('\u10d0'), '\u10d0');
  });

  test('SEARCH uses it for SUBJECT and BODY', () => {
    const crit = (s: string) => parseCriteria(parseCommand(Buffer.from(`s SEARCH CHARSET UTF-8 ${s}\r\n`)).args.slice(2));
    const meta = { uid: 1, size: 10, flags: [], internalDate: new Date() };
    const tree = parseMime(Buffer.from('Subject: =?UTF-8?Q?R=C3=89SUM=C3=89?=\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nna\u0131ve\r\n'));
    const on = (s: string) => matches(crit(s), { seq: 1, meta, count: 1, maxUid: 1, tree });
    assert.equal(on('SUBJECT "résumé"'), true);
    assert.equal(on('SUBJECT "resume"'), false);
    assert.equal(on('BODY "NAIVE"'), true);
  });
});
