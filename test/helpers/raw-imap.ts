/**
 * A raw IMAP connection for protocol tests: send lines, wait (with a deadline) for what the server answers. For what
 * clients will not send, and for checking the exact untagged responses.
 */
import assert from 'node:assert/strict';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { constants as zlibConstants, createDeflateRaw, createInflateRaw, type DeflateRaw } from 'node:zlib';

export class RawImap {
  private data = '';
  private waiters: (() => void)[] = [];
  private deflate?: DeflateRaw;
  /** Bytes as they came off the wire after COMPRESS (to check that they really are compressed). */
  wire: Buffer[] = [];
  constructor(public socket: Socket | TLSSocket) {
    this.listen(socket);
  }
  private listen(s: Socket | TLSSocket) {
    s.on('data', (c: Buffer) => {
      this.data += c.toString('latin1');
      for (const w of this.waiters.splice(0)) w();
    });
    s.on('close', () => {
      for (const w of this.waiters.splice(0)) w();
    });
  }
  /** Connects with implicit TLS (a 993-style listener). */
  static async connectTls(port: number): Promise<RawImap> {
    const s = tlsConnect({ port, host: '127.0.0.1', rejectUnauthorized: false });
    await new Promise<void>((resolve, reject) => s.once('secureConnect', resolve).once('error', reject));
    const c = new RawImap(s);
    await c.until(/^\* OK .*\r\n/m);
    return c;
  }
  static async connect(port: number): Promise<RawImap> {
    const s = netConnect(port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => s.once('connect', resolve).once('error', reject));
    const c = new RawImap(s);
    await c.until(/^\* OK .*\r\n/m);
    return c;
  }
  /** Connects and logs in (the server under test must allow LOGIN without TLS). */
  static async login(port: number, user: string, pass: string): Promise<RawImap> {
    const c = await RawImap.connect(port);
    assert.match(await c.command('l0', `LOGIN ${user} "${pass}"`), /^l0 OK/m);
    return c;
  }
  send(text: string | Buffer) {
    if (!this.deflate) {
      this.socket.write(text);
      return;
    }
    // A client flushes after each command (RFC 4978 §3 asks it of both sides), or the server never sees it.
    this.deflate.write(text);
    this.deflate.flush(zlibConstants.Z_SYNC_FLUSH);
  }
  /** Waits for a regexp in what was received since the last take, returns it all and consumes it. */
  async until(re: RegExp, timeoutMs = 5000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = re.exec(this.data);
      if (m) {
        const end = m.index + m[0].length;
        const out = this.data.slice(0, end);
        this.data = this.data.slice(end);
        return out;
      }
      if (this.socket.destroyed || Date.now() > deadline) {
        // Only the ends of what came: a failure that carries megabytes stalls Node 20's test runner (see harness/runner.ts).
        const got = this.data.length > 4000 ? `${JSON.stringify(this.data.slice(0, 2000))} ... (${this.data.length} characters in all) ... ${JSON.stringify(this.data.slice(-1000))}` : JSON.stringify(this.data);
        throw new Error(`timeout waiting for ${re}; got ${got}`);
      }
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 50);
      });
    }
  }
  async command(tag: string, text: string): Promise<string> {
    this.send(`${tag} ${text}\r\n`);
    return this.until(new RegExp(`^${tag} (OK|NO|BAD).*\\r\\n`, 'm'));
  }
  /** Like command(), but asserts the tagged status and returns the whole response. */
  async ok(tag: string, text: string): Promise<string> {
    const r = await this.command(tag, text);
    assert.match(r, new RegExp(`^${tag} OK`, 'm'), `${text} → ${r}`);
    return r;
  }
  async starttls(): Promise<void> {
    const r = await this.command('st', 'STARTTLS');
    assert.match(r, /^st OK/m);
    this.socket.removeAllListeners('data');
    const t = tlsConnect({ socket: this.socket as Socket, rejectUnauthorized: false });
    await new Promise<void>((resolve, reject) => t.once('secureConnect', resolve).once('error', reject));
    this.socket = t;
    this.data = '';
    this.listen(t);
  }
  /** COMPRESS DEFLATE (RFC 4978): after the tagged OK both directions are raw DEFLATE. `pipelined` follows in clear. */
  async compress(pipelined = ''): Promise<void> {
    this.send(`zz COMPRESS DEFLATE\r\n${pipelined}`);
    const r = await this.until(/^zz (OK|NO|BAD).*\r\n/m);
    assert.match(r, /^zz OK/m, r);
    this.socket.removeAllListeners('data');
    // Anything after the OK in the same packet is already compressed: it goes into the inflater first.
    const early = Buffer.from(this.data, 'latin1');
    this.data = '';
    const inflate = createInflateRaw();
    inflate.on('data', (c: Buffer) => {
      this.data += c.toString('latin1');
      for (const w of this.waiters.splice(0)) w();
    });
    if (early.length) {
      this.wire.push(early);
      inflate.write(early);
    }
    this.socket.on('data', (c: Buffer) => {
      this.wire.push(c);
      inflate.write(c);
    });
    const deflate = createDeflateRaw();
    deflate.on('data', (c: Buffer) => this.socket.write(c));
    this.deflate = deflate;
  }
  close() {
    this.socket.destroy();
  }
}
