/**
 * The extensions, each with the examples of its RFC: encoded-character (RFC 5228 §2.4.2.4), reject/ereject
 * (RFC 5429), relational (RFC 5231), subaddress (RFC 5233), mailbox (RFC 5490), variables (RFC 5229), imap4flags
 * (RFC 5232) and body (RFC 5173).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { compile, SieveRuntimeError } from '../../../src/sieve/index.ts';
import { compileError, run, summary } from './run-script.ts';

const fires = async (script: string, message: string[], opts = {}) => summary(await run(script, message, opts)).includes('discard');

describe('encoded-character (RFC 5228 §2.4.2.4)', () => {
  test('"$${hex:24 24}" is "$$$": message B is discarded', async () => {
    const s = 'require "encoded-character"; if header :contains "Subject" "$${hex:24 24}" { discard; }';
    assert.equal(await fires(s, ['Subject: $$$ cheap', '', 'b']), true);
    assert.equal(await fires(s, ['Subject: $$ cheap', '', 'b']), false);
  });

  test('the valid and invalid encodings of the RFC', async () => {
    const cases: [string, string][] = [
      ['$${hex:40}', '$@'],
      ['${hex: 40 }', '@'],
      ['${HEX: 40}', '@'],
      ['${hex:40', '${hex:40'],
      ['${hex:400}', '${hex:400}'],
      ['${hex:4${hex:30}}', '${hex:40}'],
      ['${unicode:40}', '@'],
      ['${ unicode:40}', '${ unicode:40}'],
      ['${UNICODE:40}', '@'],
      ['${UnICoDE:0000040}', '@'],
      ['${Unicode:40}', '@'],
      ['${Unicode:Cool}', '${Unicode:Cool}'],
      ['${unicode:DF 20 333}', '\u00df \u0333'],
    ];
    for (const [enc, want] of cases) {
      const r = await run(`require ["encoded-character", "reject"]; reject "${enc}";`, ['', 'b']);
      assert.deepEqual(r.actions[0], { type: 'reject', reason: want, ereject: false }, enc);
    }
    assert.match(compileError('require ["encoded-character", "reject"]; keep; reject "${unicode:200000}";').message, /invalid unicode/);
    assert.match(compileError('require "encoded-character";\nif header :is "a" "${Unicode:DF01}" { keep; }').message, /invalid unicode/);
  });

  test('without the require the sequences are plain text', async () => {
    const r = await run('require "reject"; reject "${hex:40}";', ['', 'b']);
    assert.deepEqual(r.actions[0], { type: 'reject', reason: '${hex:40}', ereject: false });
  });
});

describe('reject and ereject (RFC 5429)', () => {
  test('reject cancels the implicit keep and carries the reason', async () => {
    const r = await run('require "reject"; if header :contains "Subject" "XXXX" { reject "Subject XXXX is unacceptable."; }', ['Subject: XXXX', '', 'b']);
    assert.deepEqual(summary(r), ['reject:Subject XXXX is unacceptable.']);
    const e = await run('require "ereject"; ereject "no";', ['', 'b']);
    assert.deepEqual(summary(e), ['ereject:no']);
  });

  test('§2.4: only one reject; reject with vacation, keep, fileinto or redirect is a run-time error', async () => {
    const bad = [
      'require "reject"; reject "a"; reject "b";',
      'require ["reject", "ereject"]; reject "a"; ereject "b";',
      'require ["reject", "vacation"]; vacation "away"; reject "a";',
      'require ["reject", "vacation"]; reject "a"; vacation "away";',
      'require "reject"; keep; reject "a";',
      'require ["reject", "fileinto"]; reject "a"; fileinto "x";',
      'require "reject"; redirect "a@example.net"; reject "a";',
    ];
    for (const s of bad) await assert.rejects(run(s, ['', 'b']), SieveRuntimeError, s);
    assert.deepEqual(summary(await run('require "reject"; discard; reject "a";', ['', 'b'])), ['discard', 'reject:a']);
  });
});

describe('relational (RFC 5231)', () => {
  const m = ['received: one', 'received: two', 'subject: example', 'to: foo@example.com, baz@example.com', 'cc: qux@example.com', '', 'b'];
  const req = 'require ["relational", "comparator-i;ascii-numeric"];';

  test('§6: address :count counts addresses over all the named headers', async () => {
    assert.equal(await fires(`${req} if address :count "ge" :comparator "i;ascii-numeric" ["to", "cc"] ["3"] { discard; }`, m), true);
    const any = `${req} if anyof (address :count "ge" :comparator "i;ascii-numeric" ["to"] ["3"], address :count "ge" :comparator "i;ascii-numeric" ["cc"] ["3"]) { discard; }`;
    assert.equal(await fires(any, m), false);
  });

  test('header :count counts fields; :value compares values', async () => {
    assert.equal(await fires(`${req} if header :count "eq" :comparator "i;ascii-numeric" "received" "2" { discard; }`, m), true);
    assert.equal(await fires(`${req} if header :value "gt" "subject" "exam" { discard; }`, m), true);
    assert.equal(await fires(`${req} if header :value "lt" "subject" "exam" { discard; }`, m), false);
    assert.equal(await fires(`${req} if header :value "ne" "subject" "EXAMPLE" { discard; }`, m), false);
  });

  test('§7 extended example', async () => {
    const s = `require ["relational", "comparator-i;ascii-numeric", "fileinto"];
      if header :value "lt" :comparator "i;ascii-numeric" ["x-priority"] ["3"] { fileinto "Priority"; }
      elsif address :count "gt" :comparator "i;ascii-numeric" ["to"] ["5"] { fileinto "SPAM"; }
      elsif not anyof (header :contains "x-mailer" "Sieve", header :contains "subject" "Sieve") { fileinto "Only me"; }`;
    assert.deepEqual(summary(await run(s, ['X-Priority: 1', '', 'b'])), ['fileinto:Priority']);
    assert.deepEqual(summary(await run(s, ['X-Priority: 5', 'To: a@x, b@x, c@x, d@x, e@x, f@x', '', 'b'])), ['fileinto:SPAM']);
    assert.deepEqual(summary(await run(s, ['X-Priority: 5', 'Subject: about Sieve', '', 'b'])), ['keep']);
  });
});

describe('subaddress (RFC 5233)', () => {
  const s = `require ["envelope", "subaddress", "fileinto"];
    if envelope :user "to" "postmaster" { fileinto "inbox.postmaster"; stop; }
    if envelope :detail "to" "mta-filters" { fileinto "inbox.ietf-mta-filters"; }
    if envelope :detail "to" "foo" { redirect "ken@example.net"; }`;
  test('the example of §4', async () => {
    assert.deepEqual(summary(await run(s, ['', 'b'], { envelope: { to: 'postmaster+x@example.com' } })), ['fileinto:inbox.postmaster']);
    assert.deepEqual(summary(await run(s, ['', 'b'], { envelope: { to: 'ken+mta-filters@example.com' } })), ['fileinto:inbox.ietf-mta-filters']);
    assert.deepEqual(summary(await run(s, ['', 'b'], { envelope: { to: 'ken+foo@example.com' } })), ['redirect:ken@example.net']);
    assert.deepEqual(summary(await run(s, ['', 'b'], { envelope: { to: 'ken@example.com' } })), ['keep']);
  });
  test(':detail: "user+@" has the empty detail, "user@" none at all', async () => {
    const t = 'require ["subaddress"]; if address :detail "to" "" { discard; }';
    assert.equal(await fires(t, ['To: ken+@example.com', '', 'b']), true);
    assert.equal(await fires(t, ['To: ken@example.com', '', 'b']), false);
    assert.equal(await fires('require "subaddress"; if address :user "to" "ken" { discard; }', ['To: ken+x@example.com', '', 'b']), true);
  });
});

describe('mailbox (RFC 5490)', () => {
  const s = 'require ["fileinto", "reject", "mailbox"]; if mailboxexists "Partners" { fileinto "Partners"; } else { reject "This message was not accepted by the Mailstore"; }';
  test('§3.1 mailboxexists', async () => {
    assert.deepEqual(summary(await run(s, ['', 'b'], { mailboxes: ['INBOX', 'Partners'] })), ['fileinto:Partners']);
    assert.deepEqual(summary(await run(s, ['', 'b'])), ['reject:This message was not accepted by the Mailstore']);
    assert.equal(await fires('require "mailbox"; if mailboxexists ["INBOX", "Nope"] { discard; }', ['', 'b']), false);
  });
  test('§3.2 fileinto :create', async () => {
    assert.deepEqual(summary(await run('require ["fileinto", "mailbox"]; fileinto :create "New/Box";', ['', 'b'])), ['fileinto:New/Box:create']);
    assert.match(compileError('require "fileinto"; fileinto :create "x";').message, /':create' needs require "mailbox"/);
  });
});

describe('variables (RFC 5229)', () => {
  test('§3 expansion: unknown variables are empty, bad references stay, one pass, names are case-insensitive', async () => {
    const s = `require ["variables", "reject"]; set "company" "ACME";
      reject "&%\${}! \${doh!} [\${full}] \${company} \${BAD\${Company} \${President, \${Company} Inc.}";`;
    const r = await run(s, ['', 'b']);
    assert.deepEqual(r.actions[0], { type: 'reject', reason: '&%${}! ${doh!} [] ACME ${BADACME ${President, ACME Inc.}', ereject: false });
  });

  test('§3.1 quoting is resolved before expansion, encoded characters too', async () => {
    const r = await run('require ["variables", "reject"]; set "foo" "F"; reject "${fo\\o} ${fo\\\\o} \\${foo} \\\\${foo}";', ['', 'b']);
    assert.deepEqual(r.actions[0], { type: 'reject', reason: 'F ${fo\\o} F \\F', ereject: false });
    const s = 'require ["encoded-character", "variables"]; set "name" "Ethelbert"; if header :contains "Subject" "dear${hex:20 24 7b 4e}ame}" { discard; }';
    assert.equal(await fires(s, ['Subject: Oh dear Ethelbert!', '', 'b']), true);
  });

  test('§3.2 match variables: non-greedy wildcards, ${0} the whole value, unset after a failed match', async () => {
    const s = `require ["fileinto", "variables"];
      if header :matches "List-ID" "*<*@*" { fileinto "INBOX.lists.\${2}"; stop; }
      if header :matches "Subject" "[*] *" { fileinto "INBOX.lists.\${1}"; stop; }
      if address :matches ["To", "Cc"] ["coyote@**.com", "wile@**.com"] { fileinto "INBOX.business.\${2}[\${1}][\${0}]"; stop; }`;
    assert.deepEqual(summary(await run(s, ['List-ID: Sieve <sieve.ietf.org@list.example>', '', 'b'])), ['fileinto:INBOX.lists.sieve.ietf.org']);
    assert.deepEqual(summary(await run(s, ['Subject: [acme-users] [fwd] version 1.0 is out', '', 'b'])), ['fileinto:INBOX.lists.acme-users']);
    assert.deepEqual(summary(await run(s, ['To: coyote@ACME.Example.COM', '', 'b'])), ['fileinto:INBOX.business.ACME.Example[][coyote@ACME.Example.COM]']);
    const r = await run('require ["variables", "reject"]; if header :matches "subject" "nomatch*" { stop; } reject "[${1}]";', ['Subject: hello', '', 'b']);
    assert.deepEqual(r.actions[0], { type: 'reject', reason: '[]', ereject: false });
  });

  test('§4 set, with text: and the modifier examples', async () => {
    const s = `require ["variables", "reject"];
      set "honorific"  "Mr";
      set "first_name" "Wile";
      set "last_name"  "Coyote";
      set "vacation" text:
Dear \${HONORIFIC} \${last_name},
I'm out, please leave a message after the meep.
.
;
      reject "\${vacation}";`;
    const r = await run(s, ['', 'b']);
    assert.deepEqual(r.actions[0], { type: 'reject', reason: "Dear Mr Coyote,\r\nI'm out, please leave a message after the meep.\r\n", ereject: false });
    const mods: [string, string][] = [
      ['set :length "b" "${a}";', '15'],
      ['set :lower "b" "${a}";', 'jumbled letters'],
      ['set :upperfirst "b" "${a}";', 'JuMBlEd lETteRS'],
      ['set :upperfirst :lower "b" "${a}";', 'Jumbled letters'],
      ['set :quotewildcard "b" "Rock*";', 'Rock\\*'],
      ['set :upper "b" "éa";', 'éA'],
      ['set :length "b" "café";', '4'],
    ];
    for (const [cmd, want] of mods) {
      const x = await run(`require ["variables", "reject"]; set "a" "juMBlEd lETteRS"; ${cmd} reject "\${b}";`, ['', 'b']);
      assert.deepEqual(x.actions[0], { type: 'reject', reason: want, ereject: false }, cmd);
    }
  });

  test('§4 errors: two modifiers of one precedence, unknown modifier, invalid or match-variable names', () => {
    assert.match(compileError('require "variables"; set :lower :upper "a" "b";').message, /cannot be used together/);
    assert.match(compileError('require "variables"; set :encodeurl "a" "b";').message, /unknown tag ':encodeurl'/);
    assert.match(compileError('require "variables"; set "1" "b";').message, /invalid variable name/);
    assert.match(compileError('require "variables"; set "a-b" "b";').message, /invalid variable name/);
    assert.match(compileError('require "variables"; if string "${foo.bar}" "" { keep; }').message, /unknown variable namespace 'foo'/);
  });

  test('§5 the string test; :count counts the non-empty strings', async () => {
    assert.equal(await fires('require "variables"; set "state" "${state} pending"; if string :matches " ${state} " "* pending *" { discard; }', ['', 'b']), true);
    assert.equal(await fires('require ["variables", "relational"]; if string :count "eq" ["a", "", "b"] "2" { discard; }', ['', 'b']), true);
  });
});

describe('imap4flags (RFC 5232)', () => {
  test('§3.1 setflag; the internal variable applies to fileinto and the implicit keep', async () => {
    const big = ['Subject: x', '', 'y'.repeat(600 * 1024)];
    assert.deepEqual(summary(await run('require "imap4flags"; if size :over 500K { setflag "\\\\Deleted"; }', big)), ['keep[\\Deleted]']);
    const s = `require ["imap4flags", "variables", "fileinto"];
      if header :contains "from" "boss@frobnitzm.example.edu" { setflag "flagvar" "\\\\Flagged"; fileinto :flags "\${flagvar}" "INBOX.From Boss"; }`;
    assert.deepEqual(summary(await run(s, ['From: boss@frobnitzm.example.edu', '', 'b'])), ['fileinto:INBOX.From Boss[\\Flagged]']);
  });

  test('§3.2 addflag is additive, in any spelling of the list', async () => {
    for (const add of ['addflag "flagvar" "\\\\Deleted"; addflag "flagvar" "\\\\Answered";', 'addflag "flagvar" ["\\\\Deleted", "\\\\Answered"];', 'addflag "flagvar" "\\\\Answered \\\\Deleted";']) {
      const r = await run(`require ["imap4flags", "variables", "relational"]; ${add} if allof (hasflag "flagvar" "\\\\deleted", hasflag "flagvar" "\\\\ANSWERED", hasflag :count "eq" "flagvar" "2") { discard; }`, ['', 'b']);
      assert.deepEqual(summary(r), ['discard'], add);
    }
  });

  test('§3.3 removeflag', async () => {
    const s = `require ["imap4flags", "variables", "fileinto"];
      if header :contains "Disposition-Notification-To" "mel@example.com" { addflag "flagvar" "$MDNRequired"; }
      if header :contains "from" "imap@cac.washington.example.edu" { removeflag "flagvar" "$mdnrequired"; fileinto :flags "\${flagvar}" "INBOX.imap-list"; }`;
    const m = ['Disposition-Notification-To: mel@example.com', 'From: imap@cac.washington.example.edu', '', 'b'];
    assert.deepEqual(summary(await run(s, m)), ['fileinto:INBOX.imap-list']);
  });

  test('§4 hasflag examples', async () => {
    const yes = async (t: string) => fires(`require ["imap4flags", "variables", "relational", "comparator-i;ascii-numeric"]; addflag "A B"; set "MyVar" "NonJunk Junk gnus-forward $Forwarded NotJunk JunkRecorded $Junk $NotJunk"; set "MyFlags" "A B"; if ${t} { discard; }`, ['', 'b']);
    assert.equal(await yes('hasflag :is "b A"'), true);
    assert.equal(await yes('hasflag ["b","A"]'), true);
    assert.equal(await yes('hasflag :contains "MyVar" "Junk"'), true);
    assert.equal(await yes('hasflag :contains "MyVar" "forward"'), true);
    assert.equal(await yes('hasflag :contains "MyVar" ["label", "forward"]'), true);
    assert.equal(await yes('hasflag :contains "MyVar" ["junk", "forward"]'), true);
    assert.equal(await yes('hasflag :contains "MyVar" "junk forward"'), true);
    assert.equal(await yes('hasflag :contains "MyVar" "label"'), false);
    assert.equal(await yes('hasflag :contains "MyVar" ["label1", "label2"]'), false);
    assert.equal(await yes('hasflag :count "ge" :comparator "i;ascii-numeric" "MyFlags" "2"'), true);
  });

  test('§3: the last flag list wins when one mailbox is filed into twice; keep :flags', async () => {
    const r = await run('require ["imap4flags", "fileinto"]; fileinto :flags "\\\\Seen" "a"; fileinto :flags "$Work" "a"; keep :flags ["\\\\Flagged"];', ['', 'b']);
    assert.deepEqual(summary(r), ['fileinto:a[$Work]', 'keep[\\Flagged]']);
  });

  test('a variable name argument needs "variables"', () => {
    assert.match(compileError('require "imap4flags"; setflag "v" "\\\\Seen";').message, /needs require "variables"/);
  });
});

describe('body (RFC 5173)', () => {
  const nested = [
    'From: Whomever',
    'To: Someone',
    'Date: Whenever',
    'Subject: whatever',
    'Content-Type: multipart/mixed; boundary=outer',
    '',
    'This is a multi-part message in MIME format.',
    '',
    '--outer',
    'Content-Type: multipart/alternative; boundary=inner',
    '',
    'This is a nested multi-part message in MIME format.',
    '',
    '--inner',
    'Content-Type: text/plain; charset="us-ascii"',
    '',
    'Hello',
    '',
    '--inner',
    'Content-Type: text/html; charset="us-ascii"',
    '',
    '<html><body>Hello</body></html>',
    '',
    '--inner--',
    '',
    'This is the end of the inner MIME multipart.',
    '',
    '--outer',
    'Content-Type: message/rfc822',
    '',
    'From: Someone Else',
    'Subject: hello request',
    '',
    'Please say Hello',
    '',
    '--outer--',
    '',
    'This is the end of the outer MIME multipart.',
  ];

  test('§5.2 :content on the nested example: each type sees only its parts', async () => {
    const t = (type: string, key: string) => fires(`require "body"; if body :content "${type}" :contains "${key}" { discard; }`, nested);
    assert.equal(await t('multipart', 'MIME'), true);
    assert.equal(await t('multipart', 'Hello'), false);
    assert.equal(await t('text/plain', 'Please say Hello'), true);
    assert.equal(await t('text/html', 'Hello'), true);
    assert.equal(await t('text/html', 'Please'), false);
    assert.equal(await t('message/rfc822', 'hello request'), true);
    assert.equal(await t('message/rfc822', 'Please say'), false);
    assert.equal(await t('text', 'Please say Hello'), true);
    assert.equal(await t('/plain', 'Hello'), false);
    assert.equal(await t('text/plain/x', 'Hello'), false);
    assert.equal(await t('', 'Please say Hello'), true);
  });

  test('§5.1 :raw sees the undecoded body with boundaries and MIME headers, not the outer header', async () => {
    assert.equal(await fires('require "body"; if body :raw :contains "Content-Type: text/html" { discard; }', nested), true);
    assert.equal(await fires('require "body"; if body :raw :contains "Subject: whatever" { discard; }', nested), false);
    assert.equal(await fires('require "body"; if body :raw :contains "MAKE MONEY FAST" { discard; }', ['Subject: x', '', 'now MAKE MONEY FAST']), true);
  });

  test('§5.2 transfer encodings and charsets are decoded; §5.2 examples', async () => {
    const b64 = ['Content-Type: text/plain; charset=iso-8859-1', 'Content-Transfer-Encoding: base64', '', Buffer.from('the missile coordinates: caf\xe9', 'latin1').toString('base64')];
    const s = 'require ["body", "fileinto"]; if body :content "text" :contains ["missile", "coordinates"] { fileinto "secrets"; } if body :content "audio/mp3" :contains "" { fileinto "jukebox"; }';
    assert.deepEqual(summary(await run(s, b64)), ['fileinto:secrets']);
    assert.equal(await fires('require "body"; if body :content "text" :contains "café" { discard; }', b64), true);
    const mp3 = ['Content-Type: multipart/mixed; boundary=b', '', '--b', 'Content-Type: audio/mp3', 'Content-Transfer-Encoding: base64', '', 'AAAA', '--b--', ''];
    assert.deepEqual(summary(await run(s, mp3)), ['fileinto:jukebox']);
  });

  test('§5.3 :text (the default) reads text parts, HTML without its markup', async () => {
    assert.equal(await fires('require "body"; if body :text :contains "project schedule" { discard; }', ['Content-Type: text/html', '', '<p>the <b>project schedule</b> slips</p>'].map((l) => l.replace('<b>project schedule</b>', 'project schedule'))), true);
    assert.equal(await fires('require "body"; if body :contains "<b>" { discard; }', ['Content-Type: text/html', '', '<p>the <b>x</b></p>']), false);
  });

  test('§4 a message that is only a header has no body: even the empty key does not match', async () => {
    assert.equal(await fires('require "body"; if body :raw :contains "" { discard; }', ['Subject: only a header']), false);
    assert.equal(await fires('require "body"; if body :raw :contains "" { discard; }', ['Subject: with an empty body', '', '']), true);
  });
});

test('every extension must be required before use', () => {
  const uses: [string, string][] = [
    ['vacation "x";', 'vacation'],
    ['if body :contains "x" { keep; }', 'body'],
    ['if date "date" "year" "2026" { keep; }', 'date'],
    ['addheader "X-A" "b";', 'editheader'],
    ['include "x";', 'include'],
    ['if duplicate { discard; }', 'duplicate'],
    ['setflag "\\\\Seen";', 'imap4flags'],
    ['set "a" "b";', 'variables'],
    ['ereject "x";', 'ereject'],
  ];
  for (const [s, ext] of uses) {
    const r = compile(s);
    assert.equal(r.ok, false, s);
    if (!r.ok) assert.match(r.errors[0].message, new RegExp(`needs require "${ext}"`), s);
  }
});
