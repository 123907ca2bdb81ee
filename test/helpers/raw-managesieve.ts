/**
 * A raw ManageSieve (RFC 5804) client for tests: sends what it is given byte for byte and reads responses up to
 * their OK / NO / BYE line, with server literals `{N}` CRLF octets read by their size.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';

export interface SieveResponse {
  /** The lines before the status line, literals inlined (a literal's octets replace its `{N}` header). */
  lines: string[];
  /** The status line: `OK ...`, `NO ...` or `BYE ...`, literals inlined. */
  status: string;
}

export class RawManageSieve {
  private buf = Buffer.alloc(0);
  private waiters: (() => void)[] = [];
  closed = false;

  private constructor(private socket: Socket | TLSSocket) {
    this.listen(socket);
  }

  static async connect(port: number, host = '127.0.0.1'): Promise<RawManageSieve> {
    const socket = netConnect({ host, port });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('error', reject);
    });
    return new RawManageSieve(socket);
  }

  private listen(socket: Socket | TLSSocket): void {
    socket.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('error', () => undefined);
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  private async waitData(deadline: number, what: string): Promise<void> {
    if (this.closed) throw new Error(`connection closed waiting for ${what}; unread: ${JSON.stringify(this.buf.toString('utf8').slice(0, 300))}`);
    if (Date.now() > deadline) throw new Error(`nothing within the deadline waiting for ${what}; unread: ${JSON.stringify(this.buf.toString('utf8').slice(0, 300))}`);
    await new Promise<void>((resolve) => {
      this.waiters.push(resolve);
      setTimeout(resolve, 50);
    });
  }

  /** One logical line: a physical line, and when it ends in `{N}`, the N octets and the rest of the line after them. */
  async line(ms = 15_000): Promise<string> {
    const deadline = Date.now() + ms;
    let out = '';
    for (;;) {
      const i = this.buf.indexOf('\r\n');
      if (i < 0) {
        await this.waitData(deadline, 'a line');
        continue;
      }
      const l = this.buf.subarray(0, i).toString('utf8');
      this.buf = this.buf.subarray(i + 2);
      const m = /\{(\d+)\}$/.exec(l);
      if (!m) return out + l;
      out += l.slice(0, -m[0].length);
      const n = Number(m[1]);
      while (this.buf.length < n) await this.waitData(deadline, `a literal of ${n} octets`);
      out += this.buf.subarray(0, n).toString('utf8');
      this.buf = this.buf.subarray(n);
    }
  }

  /** Lines up to and including the status line. */
  async response(ms = 15_000): Promise<SieveResponse> {
    const lines: string[] = [];
    for (;;) {
      const l = await this.line(ms);
      if (/^(OK|NO|BYE)\b/i.test(l)) return { lines, status: l };
      lines.push(l);
    }
  }

  send(raw: string | Buffer): void {
    this.socket.write(raw);
  }

  async cmd(line: string | Buffer): Promise<SieveResponse> {
    this.send(typeof line === 'string' ? `${line}\r\n` : Buffer.concat([line, Buffer.from('\r\n')]));
    return this.response();
  }

  /** STARTTLS, the handshake, and the capabilities the server re-issues after it (RFC 5804 §2.2). */
  async starttls(): Promise<SieveResponse> {
    const r = await this.cmd('STARTTLS');
    if (!r.status.startsWith('OK')) throw new Error(`STARTTLS refused: ${r.status}`);
    await this.upgrade();
    return this.response();
  }

  async upgrade(): Promise<void> {
    this.socket.removeAllListeners('data');
    this.socket.removeAllListeners('close');
    const secured = tlsConnect({ socket: this.socket, rejectUnauthorized: false });
    await new Promise<void>((resolve, reject) => {
      secured.once('secureConnect', () => resolve());
      secured.once('error', reject);
    });
    this.socket = secured;
    this.listen(secured);
  }

  async waitClosed(ms = 15_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!this.closed) {
      if (Date.now() > deadline) throw new Error('still open');
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  close(): void {
    this.socket.destroy();
  }
}

export function saslPlain(user: string, pass: string, authz = ''): string {
  return Buffer.from(`${authz}\0${user}\0${pass}`).toString('base64');
}

/** A string as a non-synchronising literal (RFC 5804 §4 literal-c2s). */
export function literal(text: string | Buffer): string {
  const b = typeof text === 'string' ? Buffer.from(text, 'utf8') : text;
  return `{${b.length}+}\r\n${b.toString('utf8')}`;
}
