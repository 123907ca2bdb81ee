/**
 * The connection half of a line-oriented protocol session (POP3, ManageSieve): one socket, its input split into
 * units by the protocol's parser and queued until the command loop asks for the next one, writes that respect
 * back-pressure, an idle timer, an orderly end, and the in-place TLS upgrade of STLS / STARTTLS.
 *
 * The protocol session extends this and supplies the parser (`parse`), what to say on an idle timeout and on an
 * over-long line, and its own commands and states. The command loop is `for (;;) { const u = await nextLine(); … }`:
 * one command at a time, so a pipelining client's later commands wait in the queue.
 */
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { createServer as createTlsServer, TLSSocket, type SecureContext } from 'node:tls';
import type { Logger } from './logger.js';

export abstract class LineSession<Unit> {
  readonly client: string;
  protected socket: Socket;
  protected secureNow: boolean;
  protected endReason = 'disconnected';
  private readonly queued: Unit[] = [];
  private waiter: ((unit: Unit | null) => void) | undefined;
  private closed = false;

  protected constructor(
    socket: Socket,
    secure: boolean,
    protected readonly logger: Logger,
    private readonly protocol: string,
    private readonly idleTimeoutMs: number,
  ) {
    this.socket = socket;
    this.secureNow = secure;
    this.client = socket.remoteAddress ?? 'unknown';
  }

  get secure(): boolean {
    return this.secureNow;
  }

  /** Splits received bytes into units; 'too-long' when a line passes the protocol's limit. */
  protected abstract parse(chunk: Buffer): Unit[] | 'too-long';

  /** Says goodbye on an idle timeout (the session then ends with reason "idle timeout"). */
  protected abstract onIdleTimeout(): void;

  /** Says why an over-long line ends the session (then ended with reason "line too long"). */
  protected onTooLong(): void {}

  /** Drops input the parser holds (STARTTLS: nothing sent before the handshake may be read after it). */
  protected abstract clearParser(): void;

  /** The next unit from the client; null once the connection is gone. For SASL continuations too. */
  nextLine(): Promise<Unit | null> {
    if (this.queued.length) return Promise.resolve(this.queued.shift()!);
    if (this.closed) return Promise.resolve(null);
    return new Promise((resolve) => (this.waiter = resolve));
  }

  write(buf: Buffer): boolean {
    if (this.socket.destroyed || this.socket.writableEnded) return false;
    return this.socket.write(buf);
  }

  /** Writes and waits until the socket takes more (a large message or script to a slow reader). */
  writeAndDrain(buf: Buffer): Promise<void> {
    if (this.write(buf)) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        this.socket.off('drain', done);
        this.socket.off('close', done);
        resolve();
      };
      this.socket.on('drain', done);
      this.socket.on('close', done);
    });
  }

  /** Ends the session after what was written is flushed. */
  end(reason: string): void {
    this.endReason = reason;
    if (!this.socket.destroyed) this.socket.end();
    // end() flushes what was written; destroy after a grace period if the peer never reads.
    setTimeout(() => this.socket.destroy(), 1000).unref();
    this.markClosed();
  }

  /** After the command loop: the socket is ending (end() set a grace timer) or is dropped now. */
  protected dropSocket(): void {
    if (!this.socket.destroyed && !this.socket.writableEnded) this.socket.destroy();
  }

  /**
   * The TLS handshake on the same connection, after the protocol's "go ahead" reply (RFC 2595 §4, RFC 5804 §2.2).
   * Everything the client sent before the handshake is dropped unread (CVE-2011-0411); `onSecure` runs once the
   * session reads from the TLS socket.
   */
  protected upgradeToTls(secureContext: SecureContext, onSecure: () => void): void {
    this.clearParser();
    this.queued.length = 0;
    const raw = this.socket;
    raw.removeAllListeners('data');
    raw.removeAllListeners('timeout');
    raw.setTimeout(0);
    const secured = new TLSSocket(raw, { isServer: true, secureContext });
    secured.once('secure', () => {
      this.secureNow = true;
      this.socket = secured;
      this.attach(secured);
      onSecure();
    });
    secured.on('error', (err) => {
      this.logger.debug({ err, client: this.client }, `${this.protocol}: TLS handshake failed`);
      this.end('tls error');
    });
  }

  protected attach(socket: Socket): void {
    socket.setTimeout(this.idleTimeoutMs);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('timeout', () => {
      this.onIdleTimeout();
      this.end('idle timeout');
    });
    socket.on('close', () => this.markClosed());
    socket.on('error', (err) => {
      this.logger.debug({ err, client: this.client }, `${this.protocol}: connection error`);
      this.markClosed();
    });
  }

  private onData(chunk: Buffer): void {
    if (this.closed) return;
    const units = this.parse(chunk);
    if (units === 'too-long') {
      this.onTooLong();
      this.end('line too long');
      return;
    }
    for (const u of units) {
      if (this.waiter) {
        const w = this.waiter;
        this.waiter = undefined;
        w(u);
      } else this.queued.push(u);
    }
  }

  private markClosed(): void {
    if (this.closed) return;
    this.closed = true;
    this.queued.length = 0;
    const w = this.waiter;
    this.waiter = undefined;
    w?.(null);
  }
}

/** A running listener of a line protocol (POP3, ManageSieve). */
export interface LineListener {
  port: number;
  /** Connections open now (for /metrics). */
  sessionCount(): number;
  close(): Promise<void>;
}

export interface LineListenerOptions {
  port: number;
  host?: string;
  log: Logger;
  protocol: string;
  /** Connections at once; more get `busyReply` and are closed. */
  maxClients: number;
  busyReply: string | Buffer;
  /** Implicit TLS (POP3S): the TLS material the listener wraps every connection in. */
  tls?: { cert: string | Buffer; key: string | Buffer };
  /** Runs one connection's session to its end. */
  session(socket: Socket, secure: boolean): Promise<void>;
}

/** Listens, caps the connections, runs one session per connection and closes them all on close(). */
export async function listenLineProtocol(opts: LineListenerOptions): Promise<LineListener> {
  const { log, protocol } = opts;
  const sockets = new Set<Socket>();
  const onConnection = (socket: Socket) => {
    // Replies go out in several writes (untagged lines, then the tagged one): without TCP_NODELAY, Nagle's
    // algorithm holds the last piece for a delayed ACK (~40 ms per command, measured in test/bench/imap.bench.ts).
    socket.setNoDelay(true);
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    if (sockets.size > opts.maxClients) {
      socket.end(opts.busyReply);
      return;
    }
    opts.session(socket, opts.tls !== undefined).catch((err: unknown) => {
      log.error({ err, client: socket.remoteAddress }, `${protocol}: session failed`);
      socket.destroy();
    });
  };
  const server: NetServer = opts.tls ? createTlsServer({ cert: opts.tls.cert, key: opts.tls.key }, onConnection) : createNetServer(onConnection);
  if (opts.tls) {
    server.on('tlsClientError', (err: Error, socket: Socket) => {
      log.debug({ err, client: socket.remoteAddress }, `${protocol}: TLS handshake failed`);
    });
  }
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  log.info({ port, host: opts.host ?? '*', ...(opts.tls ? { secure: true } : {}) }, `${protocol}: listening`);
  return {
    port,
    sessionCount: () => sockets.size,
    close() {
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      });
    },
  };
}
