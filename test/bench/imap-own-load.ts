/**
 * The repo's own IMAP load, for when imaptest is absent (it is not a dependency, DEVELOPERS.md): `clients`
 * raw-socket clients for `secs` seconds, each in a loop of imaptest's default mix of commands on its user's INBOX —
 * LOGIN, SELECT, APPEND (LITERAL+, RFC 7888), FETCH of the flags and of a message's header, STORE +FLAGS \Seen,
 * NOOP, EXPUNGE of what it marked \Deleted, EXAMINE, LOGOUT. Every tagged reply counts as one operation (OK, NO or
 * BAD; a NO/BAD is counted apart). Returns the operations per command, so the bench can print statements per
 * command. Nothing here asserts; it drives load.
 */
import { connect, type Socket } from 'node:net';

export type OwnOp = 'LOGIN' | 'SELECT' | 'APPEND' | 'FETCH' | 'STORE' | 'NOOP' | 'EXPUNGE' | 'EXAMINE' | 'LOGOUT';

class Client {
  private buf = '';
  private waiting: { tag: string; resolve: (line: string) => void; reject: (e: Error) => void } | undefined;
  private n = 0;
  private constructor(private readonly sock: Socket) {
    sock.setEncoding('latin1');
    sock.on('data', (d: string) => {
      this.buf += d;
      this.scan();
    });
    sock.on('error', (e) => this.waiting?.reject(e));
    sock.on('close', () => this.waiting?.reject(new Error('connection closed')));
  }

  static open(port: number): Promise<Client> {
    return new Promise((resolve, reject) => {
      const s = connect(port, '127.0.0.1');
      s.once('error', reject);
      const c = new Client(s);
      // The greeting: the first untagged line.
      const onData = () => {
        if (c.buf.includes('\r\n')) {
          s.off('data', onData);
          c.buf = c.buf.slice(c.buf.indexOf('\r\n') + 2);
          resolve(c);
        }
      };
      s.on('data', onData);
    });
  }

  private scan(): void {
    const w = this.waiting;
    if (!w) return;
    // Tagged replies end a command; literals in FETCH data never start a line with our tag prefix.
    const at = this.buf.indexOf(`\r\n${w.tag} `);
    const start = this.buf.startsWith(`${w.tag} `) ? 0 : at < 0 ? -1 : at + 2;
    if (start < 0) return;
    const end = this.buf.indexOf('\r\n', start);
    if (end < 0) return;
    const line = this.buf.slice(start, end);
    this.buf = this.buf.slice(end + 2);
    this.waiting = undefined;
    w.resolve(line);
  }

  cmd(text: string): Promise<string> {
    const tag = `t${++this.n}`;
    return new Promise((resolve, reject) => {
      this.waiting = { tag, resolve, reject };
      this.sock.write(`${tag} ${text}\r\n`);
    });
  }

  close(): void {
    this.sock.destroy();
  }
}

const MESSAGE = (i: number) =>
  [
    `From: Sender ${i % 50} <sender${i % 50}@example.org>`,
    'To: someone@example.com',
    `Subject: own load ${i}`,
    `Message-ID: <own-${i}-${Date.now()}@example.org>`,
    'Date: Thu, 01 Jan 2026 10:00:00 +0000',
    '',
    ...Array.from({ length: 20 + (i % 60) }, (_, l) => `line ${l} of message ${i}: the quick brown fox jumps over the lazy dog`),
    '',
  ].join('\r\n');

/** Runs the load against `targets` (port, user) for `secs` seconds; resolves with the operation counts. */
export async function ownImapLoad(targets: { port: number; user: string }[], password: string, secs: number): Promise<{ ops: number; errors: number; byOp: Record<OwnOp, number> }> {
  const byOp = { LOGIN: 0, SELECT: 0, APPEND: 0, FETCH: 0, STORE: 0, NOOP: 0, EXPUNGE: 0, EXAMINE: 0, LOGOUT: 0 } as Record<OwnOp, number>;
  let errors = 0;
  const until = Date.now() + secs * 1000;
  let seq = 0;
  const one = async (t: { port: number; user: string }) => {
    while (Date.now() < until) {
      const c = await Client.open(t.port);
      const run = async (op: OwnOp, text: string) => {
        const line = await c.cmd(text);
        byOp[op]++;
        if (!/^\S+ OK/.test(line)) errors++;
        return line;
      };
      try {
        await run('LOGIN', `LOGIN ${t.user} "${password}"`);
        for (let cycle = 0; cycle < 5 && Date.now() < until; cycle++) {
          await run('SELECT', 'SELECT INBOX');
          for (let k = 0; k < 3; k++) {
            const m = MESSAGE(++seq);
            await run('APPEND', `APPEND INBOX (\\Seen) {${Buffer.byteLength(m, 'latin1')}+}\r\n${m}`);
          }
          await run('FETCH', 'FETCH 1:* (UID FLAGS)');
          await run('FETCH', 'UID FETCH 1:* (FLAGS)');
          await run('FETCH', 'FETCH * (UID RFC822.SIZE BODY.PEEK[HEADER.FIELDS (FROM SUBJECT DATE)])');
          await run('STORE', 'STORE * +FLAGS (\\Flagged)');
          await run('STORE', 'STORE 1 +FLAGS (\\Deleted)');
          await run('NOOP', 'NOOP');
          await run('EXPUNGE', 'EXPUNGE');
          await run('NOOP', 'NOOP');
          await run('EXAMINE', 'EXAMINE INBOX');
          await run('FETCH', 'FETCH 1:* (FLAGS)');
        }
        await run('LOGOUT', 'LOGOUT');
      } finally {
        c.close();
      }
    }
  };
  await Promise.all(targets.map(one));
  const ops = Object.values(byOp).reduce((s, v) => s + v, 0);
  return { ops, errors, byOp };
}
