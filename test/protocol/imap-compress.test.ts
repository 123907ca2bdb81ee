/**
 * COMPRESS=DEFLATE (RFC 4978, issue 10): after the tagged OK both directions are raw DEFLATE, each response flushed
 * so the client gets it at once. Driven by a raw client through node:zlib (literals, a 1 MB FETCH byte for byte,
 * IDLE, STARTTLS and implicit TLS underneath) and by imapflow, which uses COMPRESS by itself when announced.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { ImapFlow } from 'imapflow';
import { PASSWORD, startImapFixture, type ImapFixture } from '../helpers/imap-fixture.ts';
import { RawImap } from '../helpers/raw-imap.ts';

const LONG = 30_000;

let fx: ImapFixture;

/** About `size` bytes of base64 lines: random, so DEFLATE cannot shrink it and the stream has to carry it all. */
function bigMessage(subject: string, size: number): string {
  const lines: string[] = [];
  let n = 0;
  while (n < size) {
    const l = randomBytes(57).toString('base64');
    lines.push(l);
    n += l.length + 2;
  }
  return `From: anna@example.com\r\nTo: john@example.com\r\nSubject: ${subject}\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n${lines.join('\r\n')}\r\n`;
}

/** The literal of `BODY[]` in a FETCH response. */
function fetchedBody(response: string): string {
  const m = /BODY\[\] \{(\d+)\}\r\n/.exec(response);
  assert.ok(m, `no BODY[] literal in ${response.slice(0, 300)}`);
  const start = m.index + m[0].length;
  return response.slice(start, start + Number(m[1]));
}

const loggedIn = () => fx.login();

before(async () => {
  fx = await startImapFixture({ prefix: 'postern-imapz-', implicitTls: true });
});

after(() => fx.close());

describe('COMPRESS=DEFLATE (RFC 4978)', () => {
  test('is announced, needs a login, refuses unknown mechanisms with BAD and a second COMPRESS with COMPRESSIONACTIVE', async () => {
    const c = await RawImap.connect(fx.server.port);
    try {
      assert.match(await c.ok('c1', 'CAPABILITY'), /^\* CAPABILITY [^\r]*COMPRESS=DEFLATE/m);
      assert.match(await c.command('c2', 'COMPRESS DEFLATE'), /^c2 BAD/m);
      assert.match(await c.command('l1', `LOGIN john.smith "${PASSWORD}"`), /^l1 OK/m);
      assert.match(await c.command('c3', 'COMPRESS LZW'), /^c3 BAD/m);
      assert.match(await c.command('c4', 'COMPRESS'), /^c4 BAD/m);
      // The refusals left the session usable in clear.
      await c.ok('c5', 'NOOP');
      await c.compress();
      assert.match(await c.ok('c6', 'CAPABILITY'), /^\* CAPABILITY [^\r]*IMAP4rev1/m);
      assert.match(await c.command('c7', 'COMPRESS DEFLATE'), /^c7 NO \[COMPRESSIONACTIVE\]/m);
      await c.ok('c8', 'NOOP');
      // What came over the wire after the OK was DEFLATE, not the text the client read.
      const wire = Buffer.concat(c.wire).toString('latin1');
      assert.ok(wire.length > 0);
      assert.doesNotMatch(wire, /CAPABILITY|COMPRESSIONACTIVE|c8 OK/);
    } finally {
      c.close();
    }
  });

  test('a 1 MB message APPENDed as a literal through compression comes back byte for byte from FETCH', { timeout: LONG * 2 }, async () => {
    const c = await loggedIn();
    try {
      await c.compress();
      await c.ok('a0', 'CREATE Big');
      const message = bigMessage('one megabyte', 1024 * 1024);
      // A synchronizing literal: the continuation comes back through the deflater, the data goes in through the inflater.
      c.send(`a1 APPEND Big {${Buffer.byteLength(message)}}\r\n`);
      await c.until(/^\+ .*\r\n/m, LONG);
      c.send(message + '\r\n');
      assert.match(await c.until(/^a1 (OK|NO|BAD).*\r\n/m, LONG), /^a1 OK \[APPENDUID \d+ 1\]/m);
      // And a non-synchronizing one (LITERAL+) in the same stream.
      const small = `From: anna@example.com\r\nSubject: small\r\n\r\nsmall body\r\n`;
      c.send(`a2 APPEND Big {${Buffer.byteLength(small)}+}\r\n${small}\r\n`);
      assert.match(await c.until(/^a2 (OK|NO|BAD).*\r\n/m, LONG), /^a2 OK/m);
      assert.match(await c.ok('a3', 'SELECT Big'), /^\* 2 EXISTS/m);
      c.send('a4 FETCH 1 BODY.PEEK[]\r\n');
      const r = await c.until(/^a4 (OK|NO|BAD).*\r\n/m, LONG);
      assert.match(r, /^a4 OK/m);
      assert.equal(fetchedBody(r), message);
      const r2 = await c.ok('a5', 'FETCH 2 BODY.PEEK[]');
      assert.equal(fetchedBody(r2), small);
      // Base64 carries 6 bits a byte: the FETCH went out compressed (less than the message itself), to about 3/4.
      const wire = Buffer.concat(c.wire).length;
      assert.ok(wire > 0.7 * message.length && wire < message.length, `wire bytes ${wire} for a message of ${message.length}`);
    } finally {
      c.close();
    }
  });

  test('a FETCH of several large messages arrives whole and in order while the client has stopped reading', { timeout: LONG * 2 }, async () => {
    const c = await loggedIn();
    try {
      await c.ok('b0', 'CREATE Several');
      const messages = [1, 2, 3].map((i) => bigMessage(`part ${i}`, 1536 * 1024));
      for (const [i, m] of messages.entries()) {
        c.send(`b${i + 1} APPEND Several {${Buffer.byteLength(m)}+}\r\n${m}\r\n`);
        assert.match(await c.until(new RegExp(`^b${i + 1} (OK|NO|BAD).*\\r\\n`, 'm'), LONG), new RegExp(`^b${i + 1} OK`, 'm'));
      }
      await c.compress();
      await c.ok('b5', 'SELECT Several');
      // The client stops reading: 4.5 MB is more than loopback's socket buffers hold, so the server's deflater and
      // socket fill and its writes have to wait (session.drain()), neither lost nor reordered. The pause only has to
      // outlast the first few writes; the assertions do not depend on how long it is.
      c.socket.pause();
      c.send('b6 FETCH 1:3 (UID BODY.PEEK[])\r\n');
      await new Promise<void>((resolve) => setTimeout(resolve, 300));
      c.socket.resume();
      const r = await c.until(/^b6 (OK|NO|BAD).*\r\n/m, LONG);
      assert.match(r, /^b6 OK/m);
      const bodies = [...r.matchAll(/BODY\[\] \{(\d+)\}\r\n/g)].map((m) => r.slice(m.index + m[0].length, m.index + m[0].length + Number(m[1])));
      assert.deepEqual(bodies, messages);
    } finally {
      c.close();
    }
  });

  test('IDLE through compression is woken by a message another session appends', { timeout: LONG }, async () => {
    const a = await loggedIn();
    const b = await loggedIn();
    try {
      await a.ok('i0', 'CREATE Idle');
      await a.compress();
      assert.match(await a.ok('i1', 'SELECT Idle'), /^\* 0 EXISTS/m);
      a.send('i2 IDLE\r\n');
      await a.until(/^\+ .*\r\n/m, LONG);
      const m = `From: anna@example.com\r\nSubject: wake up\r\n\r\nhello\r\n`;
      b.send(`x1 APPEND Idle {${Buffer.byteLength(m)}+}\r\n${m}\r\n`);
      assert.match(await b.until(/^x1 (OK|NO|BAD).*\r\n/m, LONG), /^x1 OK/m);
      // The untagged EXISTS arrives on its own, without the client sending anything: the server flushed it.
      assert.match(await a.until(/^\* 1 EXISTS\r\n/m, LONG), /\* 1 EXISTS/);
      a.send('DONE\r\n');
      assert.match(await a.until(/^i2 (OK|NO|BAD).*\r\n/m, LONG), /^i2 OK/m);
      assert.match(await a.ok('i3', 'FETCH 1 BODY.PEEK[HEADER.FIELDS (SUBJECT)]'), /Subject: wake up/);
    } finally {
      a.close();
      b.close();
    }
  });

  test('works inside TLS after STARTTLS and on an implicit TLS listener', { timeout: LONG }, async () => {
    const s = await RawImap.connect(fx.server.port);
    const t = await RawImap.connectTls(fx.tlsServer!.port);
    try {
      await s.starttls();
      for (const c of [s, t]) {
        assert.match(await c.command('l1', `LOGIN john.smith "${PASSWORD}"`), /^l1 OK/m);
        await c.compress();
        assert.match(await c.ok('t1', 'SELECT INBOX'), /^t1 OK \[READ-WRITE\]/m);
        assert.match(await c.ok('t2', 'LIST "" "*"'), /^\* LIST [^\r]*INBOX/m);
      }
    } finally {
      s.close();
      t.close();
    }
  });

  test('a command pipelined in clear after COMPRESS is discarded, not run (§3: the client waits for the OK)', { timeout: LONG }, async () => {
    const c = await loggedIn();
    try {
      await c.compress('n1 CREATE Pipelined\r\n');
      const r = await c.ok('n2', 'LIST "" "Pipelined"');
      assert.doesNotMatch(r, /n1 |\* LIST/);
    } finally {
      c.close();
    }
  });

  test('a client that sends what is not DEFLATE after the OK is disconnected', { timeout: LONG }, async () => {
    const c = await loggedIn();
    try {
      await c.compress();
      const closed = new Promise<void>((resolve) => c.socket.once('close', () => resolve()));
      // 0xff opens a block of the reserved type 3: "invalid block type" for any inflater.
      c.socket.write(Buffer.alloc(64, 0xff));
      await closed;
    } finally {
      c.close();
    }
  });

  test('imapflow turns compression on by itself and reads and writes through it', { timeout: LONG * 2 }, async () => {
    const client = new ImapFlow({ host: '127.0.0.1', port: fx.server.port, secure: false, doSTARTTLS: false, auth: { user: 'john.smith', pass: PASSWORD }, logger: false });
    await client.connect();
    try {
      // imapflow's own record that it negotiated COMPRESS (it keeps the deflater once the server said OK).
      assert.ok((client as unknown as { _deflate?: unknown })._deflate, 'imapflow did not enable COMPRESS');
      await client.mailboxCreate('Flow');
      const message = bigMessage('through imapflow', 300 * 1024);
      const appended = await client.append('Flow', message, ['\\Seen']);
      assert.ok(appended && appended.uid);
      const lock = await client.getMailboxLock('Flow');
      try {
        const found = await client.search({ subject: 'through imapflow' }, { uid: true });
        assert.deepEqual(found, [appended.uid]);
        const msg = await client.fetchOne(String(appended.uid), { source: true, flags: true }, { uid: true });
        assert.ok(msg);
        assert.equal(msg.source?.toString('latin1'), message);
        assert.ok(msg.flags?.has('\\Seen'));
      } finally {
        lock.release();
      }
    } finally {
      await client.logout();
    }
  });
});
