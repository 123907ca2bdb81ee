/**
 * URLAUTH (RFC 4467), URLAUTH=BINARY (RFC 5524) and URL-PARTIAL (RFC 5550) over the wire, on the Maildir store:
 * GENURLAUTH signs a URL of the user's own message, URLFETCH returns what it names to whoever the access identifier
 * allows (a second user for "authuser" and "user+name") and NIL to everyone else, RESETKEY revokes, and the keys
 * survive a restart.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { HOST, startImapFixture, type ImapFixture } from '../helpers/imap-fixture.ts';
import type { RawImap } from '../helpers/raw-imap.ts';

let fx: ImapFixture;

before(async () => {
  fx = await startImapFixture({ prefix: 'postern-urlauth-', tls: false, urlauth: true });
});

after(() => fx.close());

const login = (user?: string) => fx.login(user);

const PLAIN = 'From: anna@example.com\r\nTo: john@example.com\r\nSubject: plain\r\n\r\nHello from a plain message.\r\n';
const MULTIPART = [
  'From: anna@example.com',
  'Subject: parts',
  'MIME-Version: 1.0',
  'Content-Type: multipart/mixed; boundary="b1"',
  '',
  '--b1',
  'Content-Type: text/plain; charset=us-ascii',
  '',
  'first part text',
  '--b1',
  'Content-Type: application/octet-stream',
  'Content-Transfer-Encoding: base64',
  '',
  Buffer.from('binary attachment content').toString('base64'),
  '--b1--',
  '',
].join('\r\n');

async function append(c: RawImap, tag: string, folder: string, message: string): Promise<number> {
  c.send(`${tag} APPEND ${folder} {${Buffer.byteLength(message)}+}\r\n${message}\r\n`);
  const r = await c.until(new RegExp(`^${tag} (OK|NO|BAD).*\\r\\n`, 'm'));
  const m = /APPENDUID \d+ (\d+)/.exec(r);
  assert.ok(m, r);
  return Number(m[1]);
}

/** GENURLAUTH of one rump; returns the full URL. */
async function gen(c: RawImap, tag: string, rump: string): Promise<string> {
  const r = await c.ok(tag, `GENURLAUTH "${rump}" INTERNAL`);
  const m = /^\* GENURLAUTH "([^"]+)"\r\n/m.exec(r);
  assert.ok(m, r);
  assert.ok(m[1].startsWith(rump + ':INTERNAL:'), m[1]);
  return m[1];
}

/** URLFETCH of one URL: the value as text (NIL → null). */
async function fetchUrl(c: RawImap, tag: string, arg: string): Promise<string | null> {
  const r = await c.ok(tag, `URLFETCH ${arg}`);
  const m = /^\* URLFETCH "[^"]*" ([\s\S]*?)\r\n(?=[^\r\n]* OK)/m.exec(r);
  assert.ok(m, r);
  const v = m[1];
  if (v === 'NIL') return null;
  return unstring(v);
}

/** A quoted string or a literal to its text; lists are returned as they are. */
function unstring(v: string): string {
  const lit = /^\{(\d+)\}\r\n([\s\S]*)$/.exec(v);
  if (lit) return lit[2].slice(0, Number(lit[1]));
  const q = /^"((?:[^"\\]|\\.)*)"$/.exec(v);
  if (q) return q[1].replace(/\\(.)/g, '$1');
  return v;
}

const url = (user: string, mailbox: string, rest: string) => `imap://${user}@${HOST}/${mailbox}/${rest}`;

describe('URLAUTH', () => {
  let john: RawImap;
  let anna: RawImap;
  let uidPlain: number;
  let uidParts: number;
  before(async () => {
    john = await login('john.smith');
    anna = await login('anna.bianchi');
    await john.ok('p0', 'CREATE Shared-out');
    uidPlain = await append(john, 'p1', 'Shared-out', PLAIN);
    uidParts = await append(john, 'p2', 'Shared-out', MULTIPART);
  });
  after(() => {
    john.close();
    anna.close();
  });

  test('CAPABILITY announces URLAUTH, URLAUTH=BINARY and URL-PARTIAL', async () => {
    const r = await john.ok('c1', 'CAPABILITY');
    assert.match(r, /^\* CAPABILITY .*\bURLAUTH\b.*\bURLAUTH=BINARY\b.*\bURL-PARTIAL\b/m);
  });

  test('a user+ URL is fetched by the user it names, NIL for anyone else, and nothing is marked \\Seen', async () => {
    const full = await gen(john, 'u1', url('john.smith', 'Shared-out', `;UID=${uidPlain};URLAUTH=user+john.smith`));
    assert.equal(await fetchUrl(john, 'u2', `"${full}"`), PLAIN);
    assert.equal(await fetchUrl(anna, 'u3', `"${full}"`), null);
    await john.ok('u4', 'EXAMINE Shared-out');
    assert.doesNotMatch(await john.ok('u5', `UID FETCH ${uidPlain} FLAGS`), /\\Seen/);
    await john.ok('u6', 'UNSELECT');
    // A URL for the second user, made by the owner: the second user fetches it, the owner does not.
    const forAnna = await gen(john, 'u7', url('john.smith', 'Shared-out', `;UID=${uidPlain};URLAUTH=user+anna.bianchi`));
    assert.equal(await fetchUrl(anna, 'u8', `"${forAnna}"`), PLAIN);
    assert.equal(await fetchUrl(john, 'u9', `"${forAnna}"`), null);
  });

  test('authuser and anonymous URLs of one user are fetched by a second user; submit+ is not for IMAP sessions', async () => {
    const authuser = await gen(john, 'a1', url('john.smith', 'Shared-out', `;UID=${uidPlain};URLAUTH=authuser`));
    assert.equal(await fetchUrl(anna, 'a2', `"${authuser}"`), PLAIN);
    const anonymous = await gen(john, 'a3', url('john.smith', 'Shared-out', `;UID=${uidPlain};URLAUTH=anonymous`));
    assert.equal(await fetchUrl(anna, 'a4', `"${anonymous}"`), PLAIN);
    const submit = await gen(john, 'a5', url('john.smith', 'Shared-out', `;UID=${uidPlain};URLAUTH=submit+john.smith`));
    assert.equal(await fetchUrl(john, 'a6', `"${submit}"`), null);
  });

  test('a changed URL, a wrong token, an unknown mailbox, message or user are all the same NIL', async () => {
    const full = await gen(john, 'n1', url('john.smith', 'Shared-out', `;UID=${uidPlain};URLAUTH=authuser`));
    const token = full.slice(full.lastIndexOf(':') + 1);
    const flipped = token.slice(0, -1) + (token.endsWith('0') ? '1' : '0');
    const cases = [
      full.replace(`;UID=${uidPlain};`, `;UID=${uidParts};`),
      full.slice(0, -token.length) + flipped,
      full.replace('/Shared-out/', '/Nowhere/'),
      full.replace(`;UID=${uidPlain};`, ';UID=999;'),
      full.replace('imap://john.smith@', 'imap://nobody.here@'),
      full.replace(`@${HOST}/`, '@elsewhere.example.net/'),
      'not a url',
    ];
    for (const [i, u] of cases.entries()) assert.equal(await fetchUrl(anna, `n${i + 2}`, `"${u}"`), null, u);
    // A URL whose message was expunged since: NIL too, though the token is right.
    const gone = await append(john, 'n20', 'Shared-out', PLAIN.replace('plain', 'gone'));
    const goneUrl = await gen(john, 'n21', url('john.smith', 'Shared-out', `;UID=${gone};URLAUTH=authuser`));
    assert.ok(await fetchUrl(anna, 'n22', `"${goneUrl}"`));
    await john.ok('n23', 'SELECT Shared-out');
    await john.ok('n24', `UID STORE ${gone} +FLAGS (\\Deleted)`);
    await john.ok('n25', `UID EXPUNGE ${gone}`);
    await john.ok('n26', 'UNSELECT');
    assert.equal(await fetchUrl(anna, 'n27', `"${goneUrl}"`), null);
  });

  test('GENURLAUTH refuses URLs of other users, rumps without URLAUTH or with a token, and unknown mechanisms', async () => {
    assert.match(await john.command('g1', `GENURLAUTH "${url('anna.bianchi', 'INBOX', ';UID=1;URLAUTH=authuser')}" INTERNAL`), /^g1 NO/m);
    assert.match(await john.command('g2', `GENURLAUTH "${url('john.smith', 'Shared-out', `;UID=${uidPlain}`)}" INTERNAL`), /^g2 BAD/m);
    const full = await gen(john, 'g3', url('john.smith', 'Shared-out', `;UID=${uidPlain};URLAUTH=authuser`));
    assert.match(await john.command('g4', `GENURLAUTH "${full}" INTERNAL`), /^g4 BAD/m);
    assert.match(await john.command('g5', `GENURLAUTH "${url('john.smith', 'Shared-out', `;UID=${uidPlain};URLAUTH=authuser`)}" XSECRET`), /^g5 NO/m);
    assert.match(await john.command('g6', `GENURLAUTH "${url('john.smith', 'Nowhere', ';UID=1;URLAUTH=authuser')}" INTERNAL`), /^g6 NO/m);
    // UIDVALIDITY in the URL must be the mailbox's.
    assert.match(await john.command('g7', `GENURLAUTH "${url('john.smith', 'Shared-out;UIDVALIDITY=1', `;UID=${uidPlain};URLAUTH=authuser`)}" INTERNAL`), /^g7 NO/m);
    const status = await john.ok('g8', 'STATUS Shared-out (UIDVALIDITY)');
    const uv = /UIDVALIDITY (\d+)/.exec(status)![1];
    const withUv = await gen(john, 'g9', url('john.smith', `Shared-out;UIDVALIDITY=${uv}`, `;UID=${uidPlain};URLAUTH=authuser`));
    assert.equal(await fetchUrl(anna, 'g10', `"${withUv}"`), PLAIN);
    // Several pairs in one command, one response in order.
    const r = await john.ok('g11', `GENURLAUTH "${url('john.smith', 'Shared-out', `;UID=${uidPlain};URLAUTH=authuser`)}" INTERNAL "${url('john.smith', 'Shared-out', `;UID=${uidParts};URLAUTH=authuser`)}" INTERNAL`);
    assert.match(r, new RegExp(`^\\* GENURLAUTH "[^"]*;UID=${uidPlain};[^"]*" "[^"]*;UID=${uidParts};[^"]*"\\r\\n`, 'm'));
  });

  test('SECTION and PARTIAL (RFC 5550), BINARY and BODYPARTSTRUCTURE (RFC 5524)', async () => {
    const part1 = await gen(john, 's1', url('john.smith', 'Shared-out', `;UID=${uidParts}/;SECTION=1;URLAUTH=authuser`));
    assert.equal(await fetchUrl(anna, 's2', `"${part1}"`), 'first part text');
    const partial = await gen(john, 's3', url('john.smith', 'Shared-out', `;UID=${uidParts}/;SECTION=1/;PARTIAL=6.4;URLAUTH=authuser`));
    assert.equal(await fetchUrl(anna, 's4', `"${partial}"`), 'part');
    const fromOffset = await gen(john, 's5', url('john.smith', 'Shared-out', `;UID=${uidPlain}/;PARTIAL=6;URLAUTH=authuser`));
    assert.equal(await fetchUrl(anna, 's6', `"${fromOffset}"`), PLAIN.slice(6));
    const header = await gen(john, 's7', url('john.smith', 'Shared-out', `;UID=${uidPlain}/;SECTION=HEADER.FIELDS%20(SUBJECT);URLAUTH=authuser`));
    assert.equal(await fetchUrl(anna, 's8', `"${header}"`), 'Subject: plain\r\n\r\n');

    const part2 = await gen(john, 's9', url('john.smith', 'Shared-out', `;UID=${uidParts}/;SECTION=2;URLAUTH=authuser`));
    // Plain URLFETCH: the part as stored (base64); BINARY: decoded.
    assert.equal(await fetchUrl(anna, 's10', `"${part2}"`), Buffer.from('binary attachment content').toString('base64'));
    const r = await anna.ok('s11', `URLFETCH ("${part2}" BINARY BODYPARTSTRUCTURE)`);
    assert.match(r, /^\* URLFETCH "[^"]+" \(BODYPARTSTRUCTURE \("APPLICATION" "OCTET-STREAM" NIL NIL NIL "BASE64" 25 NIL NIL NIL NIL\) BINARY "binary attachment content"\)\r\n/m);
    const s = await anna.ok('s12', `URLFETCH ("${part2}" BODYPARTSTRUCTURE)`);
    assert.match(s, /\(BODYPARTSTRUCTURE \("APPLICATION" "OCTET-STREAM" NIL NIL NIL "BASE64" 36 /);
    const body = await anna.ok('s13', `URLFETCH ("${part1}" BODY)`);
    assert.match(body, /^\* URLFETCH "[^"]+" \(BODY "first part text"\)\r\n/m);
    // A list form with a bad URL is NIL like the plain one.
    assert.match(await anna.ok('s14', 'URLFETCH ("imap://x@y/z;UID=1;URLAUTH=authuser:INTERNAL:00000000000000000000000000000000" BINARY)'), /^\* URLFETCH "[^"]+" NIL\r\n/m);
    assert.match(await anna.command('s15', `URLFETCH ("${part1}" BODY BINARY)`), /^s15 BAD/m);
  });

  test('EXPIRE: a URL is good until its expiry and NIL after it', async () => {
    const future = new Date(Date.now() + 3600_000).toISOString().replace(/\.\d+Z$/, 'Z');
    const past = new Date(Date.now() - 1000).toISOString().replace(/\.\d+Z$/, 'Z');
    const good = await gen(john, 'e1', url('john.smith', 'Shared-out', `;UID=${uidPlain};EXPIRE=${future};URLAUTH=authuser`));
    assert.equal(await fetchUrl(anna, 'e2', `"${good}"`), PLAIN);
    const expired = await gen(john, 'e3', url('john.smith', 'Shared-out', `;UID=${uidPlain};EXPIRE=${past};URLAUTH=authuser`));
    assert.equal(await fetchUrl(anna, 'e4', `"${expired}"`), null);
    // The expiry is part of what is signed: moving it makes the token wrong.
    assert.equal(await fetchUrl(anna, 'e5', `"${expired.replace(past, future)}"`), null);
  });

  test('RESETKEY of one mailbox revokes its URLs only; RESETKEY without a mailbox revokes all', async () => {
    const out = await gen(john, 'r1', url('john.smith', 'Shared-out', `;UID=${uidPlain};URLAUTH=authuser`));
    const inboxUid = await append(john, 'r2', 'INBOX', PLAIN);
    const inbox = await gen(john, 'r3', url('john.smith', 'INBOX', `;UID=${inboxUid};URLAUTH=authuser`));
    assert.equal(await fetchUrl(anna, 'r4', `"${out}"`), PLAIN);
    assert.equal(await fetchUrl(anna, 'r5', `"${inbox}"`), PLAIN);
    await john.ok('r6', 'RESETKEY Shared-out INTERNAL');
    assert.equal(await fetchUrl(anna, 'r7', `"${out}"`), null);
    assert.equal(await fetchUrl(anna, 'r8', `"${inbox}"`), PLAIN, 'another mailbox keeps its key');
    // A new URL of the reset mailbox works, with the new key.
    const again = await gen(john, 'r9', url('john.smith', 'Shared-out', `;UID=${uidPlain};URLAUTH=authuser`));
    assert.notEqual(again, out);
    assert.equal(await fetchUrl(anna, 'r10', `"${again}"`), PLAIN);
    assert.match(await anna.command('r11', 'RESETKEY Shared-out'), /^r11 NO/m, 'anna has no such mailbox');
    assert.equal(await fetchUrl(anna, 'r12', `"${again}"`), PLAIN, 'a second user cannot reset the owner\'s key');
    await john.ok('r13', 'RESETKEY');
    assert.equal(await fetchUrl(anna, 'r14', `"${again}"`), null);
    assert.equal(await fetchUrl(anna, 'r15', `"${inbox}"`), null);
    assert.match(await john.command('r16', 'RESETKEY Shared-out XSECRET'), /^r16 NO/m);
  });

  test('a mailbox deleted and created again under the same name does not honour the old URLs', async () => {
    await john.ok('d1', 'CREATE Again');
    const uid = await append(john, 'd2', 'Again', PLAIN);
    const old = await gen(john, 'd3', url('john.smith', 'Again', `;UID=${uid};URLAUTH=authuser`));
    assert.equal(await fetchUrl(anna, 'd4', `"${old}"`), PLAIN);
    await john.ok('d5', 'DELETE Again');
    await john.ok('d6', 'CREATE Again');
    const uid2 = await append(john, 'd7', 'Again', PLAIN.replace('plain', 'other'));
    assert.equal(uid2, 1);
    assert.equal(uid, 1);
    assert.equal(await fetchUrl(anna, 'd8', `"${old}"`), null);
  });
});

test('keys survive a restart: a URL made before it is fetched after it', async () => {
  const john = await login();
  let full: string;
  try {
    await john.ok('k1', 'CREATE Durable');
    const uid = await append(john, 'k2', 'Durable', PLAIN);
    full = await gen(john, 'k3', url('john.smith', 'Durable', `;UID=${uid};URLAUTH=user+anna.bianchi`));
  } finally {
    john.close();
  }
  await fx.restart();
  const anna = await login('anna.bianchi');
  try {
    assert.equal(await fetchUrl(anna, 'k4', `"${full}"`), PLAIN);
  } finally {
    anna.close();
  }
});
