/**
 * A tiny raw-socket SMTP client for protocol tests: it sends exactly the bytes it is given (bare LF, pipelined
 * commands, over-long lines) and reads replies one at a time, so tests can see what real clients refuse to do.
 *
 *   const c = await RawSmtp.connect(port);                // plain; { tls: true } for implicit TLS (465)
 *   c.greeting                                            // { code: 220, lines: [...], text }
 *   await c.command('EHLO client.example')                // writes the line + CRLF, returns the reply
 *   c.write('MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n');      // any bytes, no CRLF added
 *   await c.reply(); await c.reply();                     // one reply each
 *   await c.starttls();                                   // STARTTLS, expects 220, handshake on the same socket
 *   await c.upgrade();                                    // only the handshake (after a STARTTLS sent by hand)
 *   await c.noReply(200)                                  // what arrived within 200 ms ('' when nothing did)
 *   await c.closed()                                      // waits until the server closes the connection
 *
 * Certificates are not verified (the server's is self-signed or the test pair).
 */
import { isIP, connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';

export interface SmtpReply {
  code: number;
  /** The text of each line, without the code and separator. */
  lines: string[];
  /** The lines joined with "\n". */
  text: string;
  /** The reply as received, CRLFs included. */
  raw: string;
}

export interface RawSmtpOptions {
  host?: string;
  /** Implicit TLS (port 465). */
  tls?: boolean;
  /** Default time to wait for a reply, in ms (default 5000). */
  timeoutMs?: number;
}

export class RawSmtp {
  greeting!: SmtpReply;
  /** True once TLS is up (implicit or after STARTTLS). */
  secure = false;
  private buffer = '';
  private socket: Socket | TLSSocket;
  private ended = false;
  private waiters: (() => void)[] = [];
  private readonly timeoutMs: number;
  private readonly host: string;

  private constructor(socket: Socket | TLSSocket, opts: RawSmtpOptions) {
    this.socket = socket;
    this.timeoutMs = opts.timeoutMs ?? 5000;
    this.host = opts.host ?? '127.0.0.1';
    this.listen(socket);
  }

  static async connect(port: number, opts: RawSmtpOptions = {}): Promise<RawSmtp> {
    const host = opts.host ?? '127.0.0.1';
    const socket = await new Promise<Socket | TLSSocket>((resolve, reject) => {
      const s = opts.tls
        ? tlsConnect({ host, port, rejectUnauthorized: false }, () => resolve(s))
        : netConnect({ host, port }, () => resolve(s));
      s.once('error', reject);
    });
    const c = new RawSmtp(socket, opts);
    c.secure = !!opts.tls;
    try {
      c.greeting = await c.reply();
    } catch (err) {
      c.close();
      throw err;
    }
    return c;
  }

  private listen(socket: Socket | TLSSocket): void {
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => {
      this.buffer += d;
      this.wake();
    });
    socket.on('error', () => {
      /* resets are part of the tests; closed() reports the end */
    });
    socket.on('close', () => {
      this.ended = true;
      this.wake();
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  private next(ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== done);
        resolve(false);
      }, ms);
      const done = () => {
        clearTimeout(timer);
        resolve(true);
      };
      this.waiters.push(done);
    });
  }

  /** A complete reply at the start of the buffer, taken out of it; null when not all of it is there yet. */
  private take(): SmtpReply | null {
    let pos = 0;
    const lines: string[] = [];
    for (;;) {
      const eol = this.buffer.indexOf('\n', pos);
      if (eol < 0) return null;
      const line = this.buffer.slice(pos, eol).replace(/\r$/, '');
      pos = eol + 1;
      const m = /^(\d{3})([ -]?)(.*)$/.exec(line);
      if (!m) throw new Error(`not an SMTP reply line: ${JSON.stringify(line)}`);
      lines.push(m[3]);
      if (m[2] !== '-') {
        const raw = this.buffer.slice(0, pos);
        this.buffer = this.buffer.slice(pos);
        return { code: Number(m[1]), lines, text: lines.join('\n'), raw };
      }
    }
  }

  /** The next reply; throws when none comes within `ms` or the connection closes first. */
  async reply(ms = this.timeoutMs): Promise<SmtpReply> {
    const deadline = Date.now() + ms;
    for (;;) {
      const r = this.take();
      if (r) return r;
      if (this.ended) throw new Error(`connection closed before a reply (buffer ${JSON.stringify(this.buffer)})`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no reply within ${ms} ms (buffer ${JSON.stringify(this.buffer)})`);
      await this.next(left);
    }
  }

  /** Writes bytes as they are. */
  write(data: string | Buffer): void {
    this.socket.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data);
  }

  /** Writes `line` + CRLF and returns the reply. */
  async command(line: string, ms?: number): Promise<SmtpReply> {
    this.write(`${line}\r\n`);
    return this.reply(ms);
  }

  /** Resolves with whatever arrived within `ms` ('' when nothing did). Use it to show that a command got no answer. */
  async noReply(ms = 200): Promise<string> {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline && !this.ended) await this.next(deadline - Date.now());
    const got = this.buffer;
    this.buffer = '';
    return got;
  }

  /**
   * TLS handshake on the connection (STARTTLS must have been answered 220). Throws if plaintext bytes arrived after
   * that 220: a server that answers a command pipelined behind STARTTLS in clear text fails here.
   */
  async upgrade(): Promise<void> {
    const plain = this.socket;
    if (this.buffer) throw new Error(`plaintext bytes after the 220 to STARTTLS: ${JSON.stringify(this.buffer)}`);
    plain.removeAllListeners('data');
    plain.removeAllListeners('close');
    const secure = await new Promise<TLSSocket>((resolve, reject) => {
      const s = tlsConnect({ socket: plain, rejectUnauthorized: false, servername: isIP(this.host) ? undefined : this.host }, () => resolve(s));
      s.once('error', reject);
    });
    this.socket = secure;
    this.secure = true;
    this.listen(secure);
  }

  /** STARTTLS and the handshake; returns the 220 reply. */
  async starttls(): Promise<SmtpReply> {
    const r = await this.command('STARTTLS');
    if (r.code !== 220) throw new Error(`STARTTLS refused: ${r.raw}`);
    await this.upgrade();
    return r;
  }

  /** EHLO, and the keywords it announced ("SIZE 10485760", "STARTTLS", "AUTH PLAIN LOGIN", …). */
  async ehlo(name = 'client.example.net'): Promise<{ reply: SmtpReply; keywords: string[] }> {
    const reply = await this.command(`EHLO ${name}`);
    return { reply, keywords: reply.lines.slice(1) };
  }

  /** AUTH PLAIN with an initial response (RFC 4954 §4, RFC 4616). */
  authPlain(user: string, pass: string, authzid = ''): Promise<SmtpReply> {
    return this.command(`AUTH PLAIN ${Buffer.from(`${authzid}\0${user}\0${pass}`).toString('base64')}`);
  }

  /** Waits until the server closes the connection (throws after `ms`). */
  async closed(ms = this.timeoutMs): Promise<void> {
    const deadline = Date.now() + ms;
    while (!this.ended) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`connection still open after ${ms} ms`);
      await this.next(left);
    }
  }

  get isClosed(): boolean {
    return this.ended;
  }

  close(): void {
    this.socket.destroy();
  }
}

/**
 * One whole transaction from MAIL to the end of DATA, replies checked along the way; returns the final reply.
 * `data` is sent as is (no dot-stuffing), then the end of data (".\r\n" after a final CRLF, else "\r\n.\r\n")
 * unless `raw` is set (the data carries its own end).
 */
export async function sendRaw(
  c: RawSmtp,
  from: string,
  to: string[],
  data: string | Buffer,
  opts: { raw?: boolean } = {},
): Promise<SmtpReply> {
  const mail = await c.command(`MAIL FROM:<${from}>`);
  if (mail.code !== 250) return mail;
  for (const r of to) {
    const rcpt = await c.command(`RCPT TO:<${r}>`);
    if (rcpt.code !== 250) return rcpt;
  }
  const dataReply = await c.command('DATA');
  if (dataReply.code !== 354) return dataReply;
  c.write(data);
  if (!opts.raw) {
    const text = typeof data === 'string' ? data : data.toString('latin1');
    c.write(text.endsWith('\r\n') ? '.\r\n' : '\r\n.\r\n');
  }
  return c.reply();
}
