/**
 * A raw IMAP connection for protocol tests: send lines, wait (with a deadline) for what the server answers. For what
 * clients will not send, and for checking the exact untagged responses.
 */
import assert from 'node:assert/strict';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';

export class RawImap {
  private data = '';
  private waiters: (() => void)[] = [];
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
    this.socket.write(text);
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
      if (this.socket.destroyed || Date.now() > deadline) throw new Error(`timeout waiting for ${re}; got ${JSON.stringify(this.data)}`);
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
  close() {
    this.socket.destroy();
  }
}
