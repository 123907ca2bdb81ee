/**
 * A raw ManageSieve (RFC 5804) client for tests: sends what it is given byte for byte and reads responses up to
 * their OK / NO / BYE line, with server literals `{N}` CRLF octets read by their size.
 */
import { rawConnect, RawSocketClient } from './raw-client.ts';

export interface SieveResponse {
  /** The lines before the status line, literals inlined (a literal's octets replace its `{N}` header). */
  lines: string[];
  /** The status line: `OK ...`, `NO ...` or `BYE ...`, literals inlined. */
  status: string;
}

export class RawManageSieve extends RawSocketClient {
  static async connect(port: number, host = '127.0.0.1'): Promise<RawManageSieve> {
    return new RawManageSieve(await rawConnect(port, { host }));
  }

  /** One logical line: a physical line, and when it ends in `{N}`, the N octets and the rest of the line after them. */
  async line(ms = 15_000): Promise<string> {
    const deadline = Date.now() + ms;
    let out = '';
    for (;;) {
      const l = await this.physicalLine(deadline, 'utf8');
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
}

export function saslPlain(user: string, pass: string, authz = ''): string {
  return Buffer.from(`${authz}\0${user}\0${pass}`).toString('base64');
}

/** A string as a non-synchronising literal (RFC 5804 §4 literal-c2s). */
export function literal(text: string | Buffer): string {
  const b = typeof text === 'string' ? Buffer.from(text, 'utf8') : text;
  return `{${b.length}+}\r\n${b.toString('utf8')}`;
}
