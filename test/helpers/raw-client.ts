/**
 * The socket half of the raw protocol clients tests use where a library would hide what the server sent (POP3,
 * ManageSieve): bytes as they came, a wait for more that ends at a deadline or at close, the in-place TLS upgrade
 * after STLS / STARTTLS, and a wait for the server to close. The protocol clients add their own line reading.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';

/** Connects in plain TCP, or in TLS without checking the test certificate. */
export async function rawConnect(port: number, opts: { host?: string; secure?: boolean } = {}): Promise<Socket | TLSSocket> {
  const host = opts.host ?? '127.0.0.1';
  const socket = opts.secure ? tlsConnect({ host, port, rejectUnauthorized: false }) : netConnect({ host, port });
  await new Promise<void>((resolve, reject) => {
    socket.once(opts.secure ? 'secureConnect' : 'connect', () => resolve());
    socket.once('error', reject);
  });
  return socket;
}

export class RawSocketClient {
  /** What the server sent and the client has not read yet. */
  protected buf = Buffer.alloc(0);
  private waiters: (() => void)[] = [];
  closed = false;

  protected constructor(protected socket: Socket | TLSSocket) {
    this.listen(socket);
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

  /** Waits for more bytes; throws when the connection closed or the deadline passed first. */
  protected async waitData(deadline: number, what: string): Promise<void> {
    const unread = () => JSON.stringify(this.buf.toString('utf8').slice(0, 300));
    if (this.closed) throw new Error(`connection closed waiting for ${what}; unread: ${unread()}`);
    if (Date.now() > deadline) throw new Error(`nothing within the deadline waiting for ${what}; unread: ${unread()}`);
    await new Promise<void>((resolve) => {
      this.waiters.push(resolve);
      setTimeout(resolve, 50);
    });
  }

  /** One CRLF-terminated line as it came, decoded as `encoding`. */
  protected async physicalLine(deadline: number, encoding: BufferEncoding): Promise<string> {
    for (;;) {
      const i = this.buf.indexOf('\r\n');
      if (i >= 0) {
        const l = this.buf.subarray(0, i).toString(encoding);
        this.buf = this.buf.subarray(i + 2);
        return l;
      }
      await this.waitData(deadline, 'a line');
    }
  }

  send(raw: string | Buffer): void {
    this.socket.write(raw);
  }

  /** The TLS handshake on this connection, once the server said go ahead. */
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
