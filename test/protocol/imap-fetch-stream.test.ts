/**
 * FETCH of a large message streams the file (issue 11): BODY[], BODY[]<partial>, BINARY[] and RFC822 of a 50 MiB
 * message arrive byte for byte (hashes) over plain TCP, implicit TLS and COMPRESS=DEFLATE, while the server's live
 * memory (heap + buffers, after a full GC, measured in the server's own process) grows by far less than the message:
 * the client stops reading in the middle of the literal, so whatever the server holds for it is held then.
 *
 * The server is test/fixtures/imap/fetch-stream-server.fixture.ts in a child process. The bound (a quarter of the
 * message) is a behaviour bound, not a timing one: reading the whole message into memory costs at least its size.
 */
import assert from 'node:assert/strict';
import { createHash, type Hash } from 'node:crypto';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { constants as zlibConstants, createDeflateRaw, createInflateRaw, type DeflateRaw } from 'node:zlib';
import { spawnChild, type Child } from '../harness/children.ts';
import { ROOT } from '../helpers/cli.ts';
import { PASSWORD } from '../helpers/imap-fixture.ts';
import { waitFor } from '../helpers/wait.ts';
import { bigMessage } from '../fixtures/imap/fetch-stream-server.fixture.ts';

const SIZE = 50 * 1024 * 1024;
const MiB = 1024 * 1024;

interface Literal {
  size: number;
  received: number;
  hash: Hash;
  digest?: string;
}

/**
 * A client that hashes literals as they arrive instead of keeping them (50 MiB through a regexp-scanned string
 * would be slow), and can stop reading once a literal has reached a given size.
 */
class StreamClient {
  private text = '';
  private partial = '';
  private literal?: Literal;
  readonly literals: Literal[] = [];
  private deflate?: DeflateRaw;
  private pauseAt?: { bytes: number; paused: () => void };
  private constructor(private socket: Socket) {
    socket.on('data', (c: Buffer) => this.onData(c));
  }

  static async open(port: number, mode: 'plain' | 'tls' | 'compress'): Promise<StreamClient> {
    const socket = mode === 'tls' ? tlsConnect({ port, host: '127.0.0.1', rejectUnauthorized: false }) : netConnect(port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => socket.once(mode === 'tls' ? 'secureConnect' : 'connect', resolve).once('error', reject));
    const c = new StreamClient(socket);
    await c.until(/^\* OK .*\r\n/m);
    await c.ok('l', `LOGIN john.smith "${PASSWORD}"`);
    if (mode === 'compress') await c.compress();
    await c.ok('s', 'SELECT INBOX');
    return c;
  }

  private onData(c: Buffer) {
    while (c.length) {
      const lit = this.literal;
      if (lit) {
        const n = Math.min(c.length, lit.size - lit.received);
        lit.hash.update(c.subarray(0, n));
        lit.received += n;
        c = c.subarray(n);
        if (lit.received === lit.size) {
          lit.digest = lit.hash.digest('hex');
          this.literal = undefined;
        }
        if (this.pauseAt && lit.received >= this.pauseAt.bytes) {
          const { paused } = this.pauseAt;
          this.pauseAt = undefined;
          this.socket.pause();
          // What was read past the pause point is handled when reading resumes.
          if (c.length) this.socket.unshift(c);
          paused();
          return;
        }
        continue;
      }
      const eol = c.indexOf('\r\n');
      if (eol < 0) {
        this.partial += c.toString('latin1');
        return;
      }
      const line = this.partial + c.subarray(0, eol + 2).toString('latin1');
      this.partial = '';
      c = c.subarray(eol + 2);
      this.text += line;
      const m = /~?\{(\d+)\}\r\n$/.exec(line);
      if (m) {
        this.literal = { size: Number(m[1]), received: 0, hash: createHash('sha256') };
        this.literals.push(this.literal);
        if (this.literal.size === 0) {
          this.literal.digest = this.literal.hash.digest('hex');
          this.literal = undefined;
        }
      }
    }
  }

  send(text: string) {
    if (!this.deflate) this.socket.write(text);
    else {
      this.deflate.write(text);
      this.deflate.flush(zlibConstants.Z_SYNC_FLUSH);
    }
  }

  async until(re: RegExp, timeoutMs = 120_000): Promise<string> {
    return waitFor(
      `${re} (have ${JSON.stringify(this.text.slice(-300))})`,
      () => {
        const m = re.exec(this.text);
        if (!m) return undefined;
        const out = this.text.slice(0, m.index + m[0].length);
        this.text = this.text.slice(m.index + m[0].length);
        return out;
      },
      { timeoutMs, intervalMs: 10 },
    );
  }

  async ok(tag: string, command: string): Promise<string> {
    this.send(`${tag} ${command}\r\n`);
    const r = await this.until(new RegExp(`^${tag} (OK|NO|BAD).*\\r\\n`, 'm'));
    assert.match(r, new RegExp(`^${tag} OK`, 'm'), `${command} → ${r}`);
    return r;
  }

  /** RFC 4978: after the tagged OK both directions are raw DEFLATE. */
  private async compress() {
    await this.ok('z', 'COMPRESS DEFLATE');
    const socket = this.socket;
    socket.removeAllListeners('data');
    const inflate = createInflateRaw();
    inflate.on('data', (c: Buffer) => this.onData(c));
    socket.pipe(inflate);
    const deflate = createDeflateRaw();
    deflate.on('data', (c: Buffer) => socket.write(c));
    this.deflate = deflate;
  }

  /** Resolves once the literal being received has `bytes` bytes in; nothing more is read until resume(). */
  pauseAfter(bytes: number): Promise<void> {
    return new Promise((resolve) => (this.pauseAt = { bytes, paused: resolve }));
  }

  resume() {
    this.socket.resume();
  }

  close() {
    this.socket.destroy();
  }
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('FETCH of a large message streams the file', () => {
  let server: Child;
  let ports: { port: number; tlsPort: number };
  let ask: () => Promise<NodeJS.MemoryUsage>;
  const message = bigMessage(SIZE);

  before(async () => {
    server = spawnChild(process.execPath, ['--import', 'tsx', '--expose-gc', join(ROOT, 'test/fixtures/imap/fetch-stream-server.fixture.ts')], {
      name: 'fetch-stream-server',
      cwd: ROOT,
      env: { ...process.env, FIXTURE_SIZE: String(SIZE) },
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    const lines = createInterface({ input: server.process.stdout! })[Symbol.asyncIterator]();
    const next = async () => {
      const r = await lines.next();
      if (r.done) throw new Error('the fixture server exited');
      return JSON.parse(r.value) as unknown;
    };
    ports = (await next()) as { port: number; tlsPort: number };
    // One question at a time: each "mem" gets the next line.
    let queue = Promise.resolve();
    ask = () => {
      const answer = queue.then(() => {
        server.process.stdin!.write('mem\n');
        return next() as Promise<NodeJS.MemoryUsage>;
      });
      queue = answer.then(() => undefined, () => undefined);
      return answer;
    };
  });
  after(async () => {
    server?.process.stdin?.end();
    await server?.stop();
  });

  const live = (m: NodeJS.MemoryUsage) => m.heapUsed + m.external;

  for (const mode of ['plain', 'tls', 'compress'] as const) {
    test(`BODY.PEEK[] over ${mode}: every byte, and the server holds far less than the message meanwhile`, { timeout: 300_000 }, async (t) => {
      const c = await StreamClient.open(mode === 'tls' ? ports.tlsPort : ports.port, mode);
      try {
        const base = live(await ask());
        const paused = c.pauseAfter(8 * MiB);
        c.send('f FETCH 1 (RFC822.SIZE BODY.PEEK[])\r\n');
        await paused;
        // The server now waits for the client with most of the message unsent.
        const during = live(await ask());
        c.resume();
        const r = await c.until(/^f (OK|NO|BAD).*\r\n/m);
        assert.match(r, /^f OK/m, r);
        assert.match(r, new RegExp(`^\\* 1 FETCH \\(RFC822\\.SIZE ${SIZE} BODY\\[\\] \\{${SIZE}\\}\\r\\n\\)\\r\\n`, 'm'), r);
        const lit = c.literals.at(-1)!;
        assert.equal(lit.received, SIZE);
        assert.equal(lit.digest, sha256(message));
        const growth = during - base;
        t.diagnostic(`live memory growth while streaming: ${(growth / MiB).toFixed(2)} MiB`);
        assert.ok(growth < SIZE / 4, `server's live memory grew by ${(growth / MiB).toFixed(1)} MiB while streaming a ${SIZE / MiB} MiB message`);
      } finally {
        c.close();
      }
    });
  }

  test('partial fetches: a large range streams, a small one is read alone; BINARY[] and RFC822 too, RFC822 sets \\Seen', { timeout: 300_000 }, async () => {
    const c = await StreamClient.open(ports.port, 'plain');
    try {
      const start = 3 * MiB + 17;
      const count = 5 * MiB;
      let r = await c.ok('p1', `FETCH 1 (BODY.PEEK[]<${start}.${count}> BODY.PEEK[]<5.10> BINARY.PEEK[]<${SIZE - 1000}.300000>)`);
      // A range of 10 bytes without CR/LF goes quoted, as any short string.
      const small = message.subarray(5, 15).toString('latin1');
      assert.match(r, new RegExp(`^\\* 1 FETCH \\(BODY\\[\\]<${start}> \\{${count}\\}\\r\\n BODY\\[\\]<5> "${small}" BINARY\\[\\]<${SIZE - 1000}> \\{1000\\}\\r\\n\\)\\r\\n`, 'm'), r);
      const [big, tail] = c.literals.slice(-2);
      assert.equal(big.digest, sha256(message.subarray(start, start + count)));
      assert.equal(tail.digest, sha256(message.subarray(SIZE - 1000)));

      r = await c.ok('p2', 'FETCH 1 (BINARY.SIZE[] BINARY.PEEK[])');
      assert.match(r, new RegExp(`^\\* 1 FETCH \\(BINARY\\.SIZE\\[\\] ${SIZE} BINARY\\[\\] \\{${SIZE}\\}\\r\\n\\)\\r\\n`, 'm'), r);
      assert.equal(c.literals.at(-1)!.digest, sha256(message));

      // RFC 3501 §6.4.5: RFC822 is BODY[] without PEEK; the \Seen it sets comes in the same response (after the literal).
      r = await c.ok('p3', 'FETCH 1 (UID RFC822)');
      assert.match(r, new RegExp(`^\\* 1 FETCH \\(UID 1 RFC822 \\{${SIZE}\\}\\r\\n FLAGS \\(\\\\Seen\\)\\)\\r\\n`, 'm'), r);
      assert.equal(c.literals.at(-1)!.digest, sha256(message));
      r = await c.ok('p4', 'FETCH 1 (FLAGS)');
      assert.match(r, /^\* 1 FETCH \(FLAGS \(\\Seen\)\)\r\n/m, r);
      await c.ok('p5', 'STORE 1 -FLAGS.SILENT (\\Seen)');
    } finally {
      c.close();
    }
  });
});
