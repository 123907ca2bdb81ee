/**
 * SAVEDATE (RFC 8514) over the wire, on the Maildir store: the save date is when a message entered its folder
 * (APPEND, COPY, MOVE, delivery), not its internal date; SEARCH SAVEDBEFORE/SAVEDON/SAVEDSINCE/SAVEDATESUPPORTED;
 * and the dates survive a restart (a new MaildirMailbox on the same directory).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { formatInternalDate } from '../../src/imap/response.ts';
import { msg, startImapFixture, type ImapFixture } from '../helpers/imap-fixture.ts';
import type { RawImap } from '../helpers/raw-imap.ts';

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

let fx: ImapFixture;

before(async () => {
  fx = await startImapFixture({ prefix: 'postern-savedate-', tls: false });
});

after(() => fx.close());

const login = () => fx.login();

/** APPEND with an internal date instead of flags. */
async function append(c: RawImap, tag: string, folder: string, message: string, date = '') {
  c.send(`${tag} APPEND ${folder}${date ? ` "${date}"` : ''} {${Buffer.byteLength(message)}+}\r\n${message}\r\n`);
  const r = await c.until(new RegExp(`^${tag} (OK|NO|BAD).*\\r\\n`, 'm'));
  assert.match(r, new RegExp(`^${tag} OK`, 'm'), r);
}

/** SAVEDATE of each UID in the selected folder, as ms since the epoch. */
async function saveDates(c: RawImap, tag: string): Promise<Map<number, number>> {
  const r = await c.ok(tag, 'UID FETCH 1:* (SAVEDATE)');
  const out = new Map<number, number>();
  for (const m of r.matchAll(/^\* \d+ FETCH \((?=.*UID (\d+))(?=.*SAVEDATE "([^"]+)")/gm)) out.set(Number(m[1]), parseDate(m[2]));
  return out;
}

function parseDate(s: string): number {
  const m = /^ ?(\d+)-(\w{3})-(\d{4}) (\d\d):(\d\d):(\d\d) \+0000$/.exec(s);
  assert.ok(m, `not an IMAP date-time: ${s}`);
  return Date.UTC(Number(m[3]), MONTHS.indexOf(m[2]), Number(m[1]), Number(m[4]), Number(m[5]), Number(m[6]));
}

const day = (t: number) => {
  const d = new Date(t);
  return `${d.getUTCDate()}-${MONTHS[d.getUTCMonth()]}-${d.getUTCFullYear()}`;
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('CAPABILITY announces SAVEDATE', async () => {
  const c = await login();
  try {
    assert.match(await c.ok('c1', 'CAPABILITY'), /^\* CAPABILITY .*\bSAVEDATE\b/m);
  } finally {
    c.close();
  }
});

test('APPEND, COPY, MOVE and delivery each save the message with the time it entered the folder; restarts keep them', async () => {
  const c = await login();
  let before: Map<number, number>;
  let copied: Map<number, number>;
  try {
    await c.ok('a0', 'CREATE Saved');
    await c.ok('a1', 'CREATE Moved');
    const t0 = Math.floor(Date.now() / 1000) * 1000;
    // An internal date in 2001: the save date is not it.
    await append(c, 'a2', 'Saved', msg('old'), '01-Feb-2001 10:00:00 +0000');
    await append(c, 'a3', 'Saved', msg('second'));
    await c.ok('a4', 'SELECT Saved');
    const appended = await saveDates(c, 'a5');
    assert.equal(appended.size, 2);
    for (const t of appended.values()) assert.ok(t >= t0 && t <= Date.now(), `save date ${new Date(t).toISOString()} is the APPEND`);
    const internal = await c.ok('a6', 'UID FETCH 1 (INTERNALDATE SAVEDATE)');
    assert.match(internal, /INTERNALDATE " 1-Feb-2001 10:00:00 \+0000"/);
    assert.doesNotMatch(internal, /SAVEDATE " 1-Feb-2001/);

    // The dates have a one-second resolution: wait so the copies' save dates are visibly later.
    await sleep(1100);
    await c.ok('a7', 'UID COPY 1 INBOX');
    await c.ok('a8', 'UID MOVE 2 Moved');
    await c.ok('a9', 'SELECT Moved');
    const moved = await saveDates(c, 'a10');
    assert.equal(moved.size, 1);
    const [movedAt] = moved.values();
    assert.ok(movedAt! > appended.get(2)!, 'MOVE saves the message anew in the target');
    await c.ok('a11', 'SELECT INBOX');
    copied = await saveDates(c, 'a12');
    assert.equal(copied.size, 1);
    assert.ok([...copied.values()][0]! > appended.get(1)!, 'COPY saves the copy anew');
    await c.ok('a13', 'SELECT Saved');
    before = await saveDates(c, 'a14');
    assert.deepEqual([...before.entries()], [[1, appended.get(1)]], 'the source of the COPY keeps its save date');

    // Delivery: the message enters new/, and the save date is its delivery, even if the folder is read later.
    const deliveredAt = Math.floor(Date.now() / 1000) * 1000;
    await fx.store.deliver({ kind: 'user', login: 'john.smith' }, Buffer.from(msg('delivered')));
    await sleep(1100);
    await c.ok('a15', 'SELECT INBOX');
    const inbox = await saveDates(c, 'a16');
    assert.equal(inbox.size, 2);
    const delivered = [...inbox.entries()].find(([uid]) => !copied.has(uid))![1];
    assert.ok(delivered >= deliveredAt && delivered < deliveredAt + 1000, `delivery saved at ${new Date(delivered).toISOString()}`);
    copied = inbox;
  } finally {
    c.close();
  }

  await fx.restart();
  const d = await login();
  try {
    await d.ok('b1', 'SELECT Saved');
    assert.deepEqual(await saveDates(d, 'b2'), before, 'save dates survive a restart');
    await d.ok('b3', 'SELECT INBOX');
    assert.deepEqual(await saveDates(d, 'b4'), copied);
  } finally {
    d.close();
  }
});

test('SEARCH SAVEDBEFORE / SAVEDON / SAVEDSINCE compare the day of the save date; SAVEDATESUPPORTED matches all', async () => {
  const c = await login();
  try {
    await c.ok('s0', 'CREATE Searched');
    await append(c, 's1', 'Searched', msg('one'), '01-Feb-2001 10:00:00 +0000');
    await append(c, 's2', 'Searched', msg('two'), '01-Feb-2001 10:00:00 +0000');
    await c.ok('s3', 'SELECT Searched');
    const saved = await saveDates(c, 's4');
    const today = day([...saved.values()][0]!);
    const tomorrow = day([...saved.values()][0]! + 86_400_000);
    assert.match(await c.ok('s5', `SEARCH SAVEDON ${today}`), /^\* SEARCH 1 2\r\n/m);
    assert.match(await c.ok('s6', `SEARCH SAVEDSINCE ${today}`), /^\* SEARCH 1 2\r\n/m);
    assert.match(await c.ok('s7', `SEARCH SAVEDBEFORE ${today}`), /^\* SEARCH\r\n/m);
    assert.match(await c.ok('s8', `SEARCH SAVEDBEFORE ${tomorrow}`), /^\* SEARCH 1 2\r\n/m);
    assert.match(await c.ok('s9', 'SEARCH SAVEDON 1-Feb-2001'), /^\* SEARCH\r\n/m, 'the internal date is not the save date');
    assert.match(await c.ok('s10', 'SEARCH ON 1-Feb-2001'), /^\* SEARCH 1 2\r\n/m);
    assert.match(await c.ok('s11', 'SEARCH SAVEDATESUPPORTED'), /^\* SEARCH 1 2\r\n/m);
    assert.match(await c.ok('s12', 'UID SEARCH NOT SAVEDATESUPPORTED'), /^\* SEARCH\r\n/m);
    assert.match(await c.command('s13', 'SEARCH SAVEDON 31-Foo-2020'), /^s13 BAD/m);
    // The FETCH value is an IMAP date-time like INTERNALDATE.
    const fetched = await c.ok('s14', 'FETCH 1 SAVEDATE');
    assert.ok(fetched.includes(`SAVEDATE "${formatInternalDate(new Date(saved.get(1)!))}"`), fetched);
  } finally {
    c.close();
  }
});
