/**
 * The message-structure side of the IMAP server against the real listener on port 0: BODY[section] through
 * forwarded (message/rfc822) messages, ENVELOPE and BODYSTRUCTURE on the wire, SORT, THREAD and BINARY — by raw
 * command scripts (exact response bytes) and by imapflow where a mail client would ask the same.
 */
import assert from 'node:assert/strict';
import { connect as netConnect, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { ImapFlow } from 'imapflow';
import { startImap, type ImapServer } from '../../src/imap/server.ts';
import { silentLogger } from '../../src/lib/logger.ts';
import { PASSWORD, ldifAuth } from '../helpers/imap-fixture.ts';
import { MemoryMailbox } from '../helpers/memory-mailbox.ts';

const crlf = (lines: string[]) => lines.join('\r\n');

/** A message forwarded as an attachment: its whole body is message/rfc822. */
const FORWARDED = crlf([
  'From: mario@example.com',
  'To: "Sales: EMEA": anna@example.com, <@relay.example:luca@example.com>;',
  'Subject: Fwd: order',
  'Date: Tue, 10 Nov 2026 09:00:00 +0000',
  'MIME-Version: 1.0',
  'Content-Type: message/rfc822',
  '',
  'From: customer@example.org',
  'Subject: order',
  '',
  'Please send 3 boxes.',
  '',
]);

const MIXED = crlf([
  'From: anna@example.com',
  'Subject: two parts',
  'MIME-Version: 1.0',
  'Content-Type: multipart/mixed; boundary="b1"',
  '',
  '--b1',
  'Content-Type: text/plain; charset=utf-8',
  '',
  'Hello',
  '--b1',
  'Content-Type: application/pdf; name="q3.pdf"',
  'Content-Disposition: attachment; filename="q3.pdf"',
  'Content-Transfer-Encoding: base64',
  '',
  'JVBERi0xLjQK',
  '--b1--',
  '',
]);

let server: ImapServer;
let mailbox: MemoryMailbox;

/** A raw IMAP connection (plain; the test allows LOGIN without TLS): send a command, read up to its tagged reply. */
class RawImap {
  private data = Buffer.alloc(0);
  private waiters: (() => void)[] = [];
  private constructor(readonly socket: Socket) {
    socket.on('data', (c: Buffer) => {
      this.data = Buffer.concat([this.data, c]);
      for (const w of this.waiters.splice(0)) w();
    });
    socket.on('close', () => {
      for (const w of this.waiters.splice(0)) w();
    });
  }
  static async login(port: number, user = 'john.smith'): Promise<RawImap> {
    const s = netConnect(port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => s.once('connect', resolve).once('error', reject));
    const c = new RawImap(s);
    await c.until(/^\* OK .*\r\n/m);
    assert.match(await c.command('l', `LOGIN ${user} "${PASSWORD}"`), /^l OK/m);
    return c;
  }
  /** Waits for a regexp in what was received (latin1), returns everything up to its end and consumes it. */
  async until(re: RegExp, timeoutMs = 10_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const text = this.data.toString('latin1');
      const m = re.exec(text);
      if (m) {
        const end = m.index + m[0].length;
        this.data = this.data.subarray(end);
        return text.slice(0, end);
      }
      if (this.socket.destroyed || Date.now() > deadline) throw new Error(`timeout waiting for ${re}; got ${JSON.stringify(text)}`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 100);
      });
    }
  }
  send(data: string | Buffer) {
    this.socket.write(data);
  }
  command(tag: string, text: string): Promise<string> {
    this.send(`${tag} ${text}\r\n`);
    return this.until(new RegExp(`^${tag} (OK|NO|BAD).*\\r\\n`, 'm'));
  }
  close() {
    this.socket.destroy();
  }
}

function client(user = 'john.smith'): ImapFlow {
  return new ImapFlow({ host: '127.0.0.1', port: server.port, secure: false, auth: { user, pass: PASSWORD }, logger: false });
}

before(async () => {
  const log = silentLogger;
  const auth = ldifAuth({ log });
  mailbox = new MemoryMailbox();
  server = await startImap({
    port: 0,
    host: '127.0.0.1',
    secure: false,
    auth,
    mailbox,
    settings: { get: (key) => (key === 'mailbox.allowUnencrypted' ? true : key === 'mailbox.imap') },
    hostname: 'mail.example.com',
    log,
    appendLimit: 1024 * 1024,
  });
  await mailbox.deliver({ kind: 'user', login: 'john.smith' }, FORWARDED);
  await mailbox.deliver({ kind: 'user', login: 'john.smith' }, MIXED);
});

after(async () => {
  await server?.close();
});

describe('FETCH of message structure', () => {
  test('BODY[1] of a forwarded message is the whole encapsulated message; [1.HEADER], [1.TEXT], [1.1] go inside it', async () => {
    const c = await RawImap.login(server.port);
    try {
      await c.command('s', 'EXAMINE INBOX');
      const inner = 'From: customer@example.org\r\nSubject: order\r\n\r\nPlease send 3 boxes.\r\n';
      const r = await c.command('f', 'FETCH 1 (BODY.PEEK[1] BODY.PEEK[1.HEADER] BODY.PEEK[1.TEXT] BODY.PEEK[1.1] BODY.PEEK[1.HEADER.FIELDS (SUBJECT)])');
      assert.equal(
        r,
        `* 1 FETCH (BODY[1] {${inner.length}}\r\n${inner} BODY[1.HEADER] {46}\r\nFrom: customer@example.org\r\nSubject: order\r\n\r\n` +
          ' BODY[1.TEXT] {22}\r\nPlease send 3 boxes.\r\n BODY[1.1] {22}\r\nPlease send 3 boxes.\r\n' +
          ' BODY[1.HEADER.FIELDS (SUBJECT)] {18}\r\nSubject: order\r\n\r\n)\r\nf OK Completed\r\n',
      );
    } finally {
      c.close();
    }
  });

  test('ENVELOPE has the group markers and the source route; BODYSTRUCTURE puts no space between parts', async () => {
    const c = await RawImap.login(server.port);
    try {
      await c.command('s', 'EXAMINE INBOX');
      const r = await c.command('f', 'FETCH 1:2 (ENVELOPE BODYSTRUCTURE)');
      assert.ok(
        r.includes('((NIL NIL "Sales: EMEA" NIL)(NIL NIL "anna" "example.com")(NIL "@relay.example" "luca" "example.com")(NIL NIL NIL NIL))'),
        r,
      );
      assert.ok(
        r.includes(
          'BODYSTRUCTURE (("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "7BIT" 5 0 NIL NIL NIL NIL)' +
            '("APPLICATION" "PDF" ("NAME" "q3.pdf") NIL NIL "BASE64" 12 NIL ("ATTACHMENT" ("FILENAME" "q3.pdf")) NIL NIL) "MIXED" ("BOUNDARY" "b1") NIL NIL NIL)',
        ),
        r,
      );
      assert.match(r, /BODYSTRUCTURE \("MESSAGE" "RFC822" NIL NIL NIL "7BIT" 68 \(NIL "order" \(\(NIL NIL "customer" "example.org"\)\)/);
    } finally {
      c.close();
    }
  });

  test('imapflow reads the forwarded message as part 1 and its text as part 1.1', async () => {
    const c = client();
    await c.connect();
    const lock = await c.getMailboxLock('INBOX');
    try {
      const msg = await c.fetchOne('1', { bodyStructure: true, bodyParts: ['1', '1.1'] });
      assert.ok(msg);
      assert.equal(msg.bodyStructure?.type, 'message/rfc822');
      assert.equal(msg.bodyParts?.get('1')?.toString(), 'From: customer@example.org\r\nSubject: order\r\n\r\nPlease send 3 boxes.\r\n');
      assert.equal(msg.bodyParts?.get('1.1')?.toString(), 'Please send 3 boxes.\r\n');
      const mixed = await c.fetchOne('2', { bodyStructure: true });
      assert.deepEqual(
        mixed && mixed.bodyStructure?.childNodes?.map((n) => [n.part, n.type, n.disposition]),
        [
          ['1', 'text/plain', undefined],
          ['2', 'application/pdf', 'attachment'],
        ],
      );
    } finally {
      lock.release();
      await c.logout();
    }
  });
});

/** APPENDs messages (header lines; the body is added) to a new folder with the given internal dates, and selects it. */
async function folderWith(c: RawImap, name: string, msgs: { h: string[]; date: string }[]): Promise<void> {
  assert.match(await c.command('c', `CREATE ${name}`), /^c OK/m);
  for (const [i, m] of msgs.entries()) {
    const text = m.h.join('\r\n') + `\r\n\r\nbody ${i + 1}\r\n`;
    c.send(`a${i} APPEND ${name} "${m.date}" {${Buffer.byteLength(text)}+}\r\n${text}\r\n`);
    assert.match(await c.until(new RegExp(`^a${i} (OK|NO|BAD).*\\r\\n`, 'm')), new RegExp(`^a${i} OK`, 'm'));
  }
  assert.match(await c.command('s', `SELECT ${name}`), /^s OK/m);
}

describe('SORT and THREAD', () => {
  test('SORT and UID SORT order the messages a search matched; CAPABILITY announces SORT, SORT=DISPLAY and THREAD', async () => {
    const c = await RawImap.login(server.port);
    try {
      assert.match(await c.command('k', 'CAPABILITY'), /^\* CAPABILITY .*\bSORT SORT=DISPLAY ESORT THREAD=ORDEREDSUBJECT THREAD=REFERENCES THREAD=REFS BINARY\b/m);
      await folderWith(c, 'Sorting', [
        { h: ['From: Zoe <zoe@example.com>', 'Subject: Re: budget', 'Date: Mon, 09 Nov 2026 10:00:00 +0100'], date: '10-Nov-2026 09:00:00 +0000' },
        { h: ['From: anna@example.com', 'Subject: agenda', 'Date: Mon, 09 Nov 2026 08:00:00 +0000'], date: '09-Nov-2026 09:00:00 +0000' },
        { h: ['From: "Bob" <bob@example.com>', 'Subject: [team] Budget (fwd)'], date: '08-Nov-2026 09:00:00 +0000' },
      ]);
      assert.match(await c.command('t1', 'SORT (SUBJECT) UTF-8 ALL'), /^\* SORT 2 1 3\r\nt1 OK/m);
      assert.match(await c.command('t2', 'SORT (REVERSE DATE) US-ASCII ALL'), /^\* SORT 1 2 3\r\nt2 OK/m);
      assert.match(await c.command('t3', 'SORT (ARRIVAL) UTF-8 ALL'), /^\* SORT 3 2 1\r\nt3 OK/m);
      assert.match(await c.command('t4', 'SORT (FROM) UTF-8 NOT SUBJECT agenda'), /^\* SORT 3 1\r\nt4 OK/m);
      assert.match(await c.command('t5', 'SORT (DISPLAYFROM) UTF-8 ALL'), /^\* SORT 2 3 1\r\nt5 OK/m);
      assert.match(await c.command('t6', 'UID SORT (SUBJECT) UTF-8 2:3'), /^\* SORT 2 3\r\nt6 OK/m);
      assert.match(await c.command('t7', 'SORT (SUBJECT) UTF-8 SUBJECT nothing'), /^\* SORT\r\nt7 OK/m);
      assert.match(await c.command('t8', 'SORT (SUBJECT) KOI8-R ALL'), /^t8 NO \[BADCHARSET \(UTF-8 US-ASCII\)\]/m);
      assert.match(await c.command('t9', 'SORT (SUBJECT REVERSE) UTF-8 ALL'), /^t9 BAD/m);
      assert.match(await c.command('t10', 'SORT SUBJECT UTF-8 ALL'), /^t10 BAD/m);
      // ESORT (RFC 5267): the same order in one ESEARCH response.
      assert.match(await c.command('t11', 'SORT RETURN (MIN MAX COUNT ALL) (SUBJECT) UTF-8 ALL'), /^\* ESEARCH \(TAG "t11"\) MIN 2 MAX 3 ALL 2,1,3 COUNT 3\r\nt11 OK/m);
      assert.match(await c.command('t12', 'UID SORT RETURN (COUNT) (SUBJECT) UTF-8 SUBJECT nothing'), /^\* ESEARCH \(TAG "t12"\) UID COUNT 0\r\nt12 OK/m);

      // ORDEREDSUBJECT: both budget messages are one thread under the older one; agenda is alone. REFERENCES: both
      // are replies or forwards ("Re:", "(fwd)"), so neither is the other's parent: they are siblings under a dummy.
      assert.match(await c.command('h1', 'THREAD ORDEREDSUBJECT UTF-8 ALL'), /^\* THREAD \(3 1\)\(2\)\r\nh1 OK/m);
      assert.match(await c.command('h2', 'UID THREAD REFERENCES UTF-8 ALL'), /^\* THREAD \(\(3\)\(1\)\)\(2\)\r\nh2 OK/m);
      // REFS does not group by subject: the three are threads of their own, oldest newest message first.
      assert.match(await c.command('h4', 'THREAD REFS UTF-8 ALL'), /^\* THREAD \(3\)\(2\)\(1\)\r\nh4 OK/m);
      assert.match(await c.command('h3', 'THREAD NONSENSE UTF-8 ALL'), /^h3 BAD/m);
    } finally {
      c.close();
    }
  });

  test('THREAD REFERENCES follows References and In-Reply-To, and answers in sequence numbers after an expunge', async () => {
    const c = await RawImap.login(server.port);
    try {
      await folderWith(c, 'Threads', [
        { h: ['Message-ID: <root@x>', 'Subject: plan'], date: '01-Nov-2026 09:00:00 +0000' },
        { h: ['Message-ID: <r1@x>', 'In-Reply-To: <root@x>', 'Subject: Re: plan'], date: '02-Nov-2026 09:00:00 +0000' },
        { h: ['Message-ID: <r2@x>', 'References: <root@x> <r1@x>', 'Subject: Re: plan'], date: '03-Nov-2026 09:00:00 +0000' },
        { h: ['Message-ID: <r3@x>', 'References: <root@x>', 'Subject: Re: plan'], date: '04-Nov-2026 09:00:00 +0000' },
        { h: ['Message-ID: <other@x>', 'Subject: lunch'], date: '01-Nov-2026 08:00:00 +0000' },
      ]);
      assert.match(await c.command('h1', 'THREAD REFERENCES UTF-8 ALL'), /^\* THREAD \(5\)\(1 \(2 3\)\(4\)\)\r\nh1 OK/m);
      assert.match(await c.command('h2', 'UID THREAD REFERENCES UTF-8 ALL'), /^\* THREAD \(5\)\(1 \(2 3\)\(4\)\)\r\nh2 OK/m);
      await c.command('d', 'STORE 1 +FLAGS.SILENT (\\Deleted)');
      assert.match(await c.command('e', 'EXPUNGE'), /^\* 1 EXPUNGE/m);
      // <root@x> is now a dummy with two children: they become siblings in a nested list.
      assert.match(await c.command('h3', 'THREAD REFERENCES UTF-8 ALL'), /^\* THREAD \(4\)\(\(1 2\)\(3\)\)\r\nh3 OK/m);
      assert.match(await c.command('h4', 'UID THREAD REFERENCES UTF-8 ALL'), /^\* THREAD \(5\)\(\(2 3\)\(4\)\)\r\nh4 OK/m);
    } finally {
      c.close();
    }
  });
});

describe('BINARY (RFC 3516)', () => {
  test('FETCH BINARY decodes base64 and quoted-printable, BINARY.SIZE counts decoded octets, partials cut them', async () => {
    const c = await RawImap.login(server.port);
    try {
      await folderWith(c, 'Binary', [
        {
          h: [
            'Subject: encoded',
            'MIME-Version: 1.0',
            'Content-Type: multipart/mixed; boundary=b',
            '',
            '--b',
            'Content-Type: text/plain; charset=utf-8',
            'Content-Transfer-Encoding: quoted-printable',
            '',
            'caf=C3=A8 =',
            'soft',
            '--b',
            'Content-Type: application/octet-stream',
            'Content-Transfer-Encoding: base64',
            '',
            'AAECAwQF',
            '--b',
            'Content-Transfer-Encoding: x-uuencode',
            '',
            'begin 644 a',
            '--b--',
          ],
          date: '01-Nov-2026 09:00:00 +0000',
        },
      ]);
      const r = await c.command('f1', 'FETCH 1 (BINARY.SIZE[1] BINARY.PEEK[1] BINARY.SIZE[2] BINARY.PEEK[2] BINARY.PEEK[2]<2.3> FLAGS)');
      const bytes = Buffer.from(r, 'latin1');
      const want = Buffer.concat([
        Buffer.from('* 1 FETCH (BINARY.SIZE[1] 10 BINARY[1] {10}\r\ncaf'),
        Buffer.from('è soft', 'utf8'),
        Buffer.from(' BINARY.SIZE[2] 6 BINARY[2] ~{6}\r\n'),
        Buffer.from([0, 1, 2, 3, 4, 5]),
        // Without NUL the content is an ordinary string (RFC 3501 §9 CHAR allows the other control octets).
        Buffer.from(' BINARY[2]<2> "\x02\x03\x04"'),
        // This session is the first to select the folder since the APPEND: the message is \Recent to it (RFC 3501 §2.3.2).
        Buffer.from(' FLAGS (\\Recent))\r\nf1 OK Completed\r\n'),
      ]);
      assert.deepEqual(bytes, want, r);
      // An encoding we cannot undo fails the FETCH, and reading without PEEK sets \Seen.
      assert.match(await c.command('f2', 'FETCH 1 BINARY[3]'), /^f2 NO \[UNKNOWN-CTE\]/m);
      assert.match(await c.command('f3', 'FETCH 1 (BINARY[2]<0.1> FLAGS)'), /FLAGS \(\\Recent \\Seen\)\)\r\nf3 OK/);
      assert.match(await c.command('f4', 'FETCH 1 BINARY[1.MIME]'), /^f4 BAD/m);
    } finally {
      c.close();
    }
  });

  test('APPEND with a literal8 keeps binary content: BINARY returns the octets sent, the stored form is CRLF-only base64', async () => {
    const c = await RawImap.login(server.port);
    try {
      assert.match(await c.command('c', 'CREATE Octets'), /^c OK/m);
      const content = Buffer.from([0x00, 0x2d, 0xe4, 0x0a, 0x0d, 0x0a, 0x0a]);
      const msg = Buffer.concat([Buffer.from('From: user@domain.org\r\nMIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n'), content]);
      c.send(`a APPEND Octets ~{${msg.length}}\r\n`);
      await c.until(/^\+ .*\r\n/m);
      c.send(Buffer.concat([msg, Buffer.from('\r\n')]));
      assert.match(await c.until(/^a (OK|NO|BAD).*\r\n/m), /^a OK \[APPENDUID \d+ 1\]/m);
      await c.command('s', 'SELECT Octets');
      const r = Buffer.from(await c.command('f', 'FETCH 1 (BINARY.SIZE[1] BINARY.PEEK[1])'), 'latin1');
      assert.deepEqual(r, Buffer.concat([Buffer.from('* 1 FETCH (BINARY.SIZE[1] 7 BINARY[1] ~{7}\r\n'), content, Buffer.from(')\r\nf OK Completed\r\n')]));
      const body = await c.command('g', 'FETCH 1 BODY.PEEK[1.MIME]');
      assert.match(body, /Content-Transfer-Encoding: base64/);
      const stored = (await mailbox.readMessage({ kind: 'user', login: 'john.smith' }, 'Octets', 1)).toString('latin1');
      assert.ok(!/\x00|\r(?!\n)|(?<!\r)\n/.test(stored), JSON.stringify(stored));
    } finally {
      c.close();
    }
  });
});
