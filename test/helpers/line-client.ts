/**
 * A raw line client for the text protocols (IMAP, POP3, SMTP, ManageSieve) where a test wants to see each reply line
 * itself rather than through a client library: CRLF-split lines, `until(re)` waits for the first line that
 * matches, and `tls()` upgrades the same connection after STARTTLS / STLS was accepted.
 */
import { connect as tcpConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { waitFor } from './wait.ts';

export class LineClient {
  private buf = '';
  private readonly got: string[] = [];

  private constructor(private socket: Socket | TLSSocket) {
    this.attach(socket);
  }

  private attach(socket: Socket | TLSSocket): void {
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => {
      this.buf += d;
      let i: number;
      while ((i = this.buf.indexOf('\r\n')) >= 0) {
        this.got.push(this.buf.slice(0, i));
        this.buf = this.buf.slice(i + 2);
      }
    });
    socket.on('error', () => undefined);
  }

  static async open(port: number, host = '127.0.0.1'): Promise<LineClient> {
    const socket = tcpConnect(port, host);
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    return new LineClient(socket);
  }

  /** Upgrades to TLS, checking the certificate against `ca` for `servername`. */
  async tls(ca: string, servername: string): Promise<void> {
    const plain = this.socket as Socket;
    plain.removeAllListeners('data');
    const secure = tlsConnect({ socket: plain, servername, ca });
    await new Promise<void>((resolve, reject) => secure.once('secureConnect', resolve).once('error', reject));
    this.socket = secure;
    this.attach(secure);
  }

  /** The lines up to and including the first that matches (they are consumed). */
  async until(re: RegExp, ms = 30_000): Promise<string[]> {
    return waitFor(`a line matching ${re} (got ${JSON.stringify(this.got.slice(-20))})`, () => {
      const i = this.got.findIndex((l) => re.test(l));
      return i >= 0 ? this.got.splice(0, i + 1) : undefined;
    }, { timeoutMs: ms });
  }

  send(line: string): void {
    this.socket.write(`${line}\r\n`);
  }

  close(): void {
    this.socket.destroy();
  }
}
