/**
 * BURL (RFC 4468) on the submission listeners: `BURL <imap-url> [LAST]` adds the message data an IMAP URLAUTH URL
 * names (a draft the client saved over IMAP) to the message being submitted, so the client need not upload it again.
 * A message is made of BURL commands only (smtp-server has no CHUNKING, so there is no BDAT to mix them with); the
 * one with LAST ends it, and it then goes through onData exactly like a message sent with DATA.
 *
 * smtp-server has no hook for a new command, so this adds `handler_BURL` to its connection class (it dispatches on
 * `handler_<VERB>`), the `BURL imap` EHLO keyword, and a DATA/RSET guard. It acts only on servers built with the
 * `burl` option: the smtp listener (port 25) never has it.
 *
 * The fetch is the application's (src/server.ts: the IMAP store, with "submit+<user>" access, RFC 4468 §3 / RFC 4467
 * §3). A URL that does not resolve is `554 5.6.6` (RFC 4468 §6), one that cannot be resolved now (directory down)
 * `451 4.4.3`; either way the whole transaction is dropped, so a message missing one of its parts is never sent.
 */
import { PassThrough } from 'node:stream';
import type { SMTPServerSession } from 'smtp-server';
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';

/** Resolves a BURL URL for the session's authenticated user: the bytes, or undefined when it cannot be had. */
export type BurlFetch = (url: string, session: SMTPServerSession) => Promise<Buffer | undefined>;

type Callback = () => void;
type OnData = (stream: PassThrough, session: SMTPServerSession, cb: (err?: (Error & { responseCode?: number }) | null, message?: unknown) => void) => void;

/** The parts of smtp-server's connection this uses (its own fields, by their names in smtp-connection.js). */
interface Connection {
  session: SMTPServerSession;
  _server: { options: { burl?: BurlFetch; size?: number }; onData: OnData };
  send(code: number, data: string | string[], context?: unknown): void;
  _resetSession(): void;
  _transactionCounter: number;
  _unrecognizedCommands: number;
  /** Message data of the BURL commands so far in this transaction. */
  _burl?: Buffer[];
  _burlDeliver(message: Buffer, callback: Callback): void;
}

type Handler = (this: Connection, command: Buffer | string, callback: Callback) => void;

let installed = false;

/** Adds BURL to smtp-server's connections (once per process). */
export function installBurl(): void {
  if (installed) return;
  installed = true;
  const proto = SMTPConnection.prototype as unknown as Record<string, Handler> & { _resetSession: (this: Connection) => void };

  const ehlo = proto.handler_EHLO;
  proto.handler_EHLO = function (command, callback) {
    if (!this._server.options.burl) return ehlo.call(this, command, callback);
    // RFC 4468 §3: "BURL imap" — the URL schemes we resolve. handler_EHLO sends its one reply synchronously.
    const own = Object.prototype.hasOwnProperty.call(this, 'send');
    const send = this.send;
    this.send = function (code, data, context) {
      send.call(this, code, code === 250 && Array.isArray(data) ? [...data, 'BURL imap'] : data, context);
    };
    try {
      ehlo.call(this, command, callback);
    } finally {
      if (own) this.send = send;
      else delete (this as Partial<Connection>).send;
    }
  };

  const reset = proto._resetSession;
  proto._resetSession = function () {
    this._burl = undefined;
    reset.call(this);
  };

  const data = proto.handler_DATA;
  proto.handler_DATA = function (command, callback) {
    // RFC 4468 §3: a message is sent with BURL or with DATA, not with both.
    if (this._burl?.length) {
      this.send(503, '5.5.1 BURL and DATA cannot be mixed; send BURL ... LAST or RSET');
      return callback();
    }
    data.call(this, command, callback);
  };

  proto.handler_BURL = function (command, callback) {
    const fetch = this._server.options.burl;
    if (!fetch) {
      this.send(500, 'Error: command not recognized');
      return callback();
    }
    const args = command.toString().trim().split(/\s+/).slice(1);
    const last = args.length === 2 && args[1].toUpperCase() === 'LAST';
    if (args.length < 1 || args.length > 2 || (args.length === 2 && !last)) {
      this.send(501, '5.5.4 Syntax: BURL absolute-URI [LAST]');
      return callback();
    }
    if (!this.session.user) {
      this.send(530, '5.7.0 Authentication required');
      return callback();
    }
    if (!this.session.envelope.rcptTo.length) {
      this.send(503, '5.5.1 Error: need RCPT command');
      return callback();
    }
    fetch(args[0], this.session).then(
      (bytes) => {
        if (!bytes) {
          this._resetSession();
          this.send(554, '5.6.6 IMAP URL resolution failed; transaction aborted');
          return callback();
        }
        const chunks = (this._burl ??= []);
        chunks.push(bytes);
        const total = chunks.reduce((n, c) => n + c.length, 0);
        const size = this._server.options.size;
        if (size && total > size) {
          this._resetSession();
          this.send(552, '5.3.4 Message size exceeds fixed maximum message size');
          return callback();
        }
        if (!last) {
          this.send(250, `2.5.0 ${bytes.length} octets appended`);
          return callback();
        }
        this._burlDeliver(Buffer.concat(chunks), callback);
      },
      () => {
        // The directory or the store could not answer (DESIGN.md §6: temporary beats wrong): try again later.
        this._resetSession();
        this.send(451, '4.4.3 Temporary failure resolving the URL; transaction aborted');
        callback();
      },
    );
  };

  /** The end of a BURL message: onData decides, and the reply and the reset are those of the end of DATA. */
  (proto as unknown as { _burlDeliver: (this: Connection, message: Buffer, callback: Callback) => void })._burlDeliver = function (message, callback) {
    this._burl = undefined;
    const stream = Object.assign(new PassThrough(), { byteLength: message.length, sizeExceeded: false });
    let done = false;
    const finish = (err?: (Error & { responseCode?: number }) | null, reply?: unknown) => {
      if (done) return;
      done = true;
      if (err) this.send(err.responseCode ?? 450, err.message);
      else this.send(250, typeof reply === 'string' ? reply : 'OK: message queued');
      this._transactionCounter++;
      this._unrecognizedCommands = 0;
      this._resetSession();
      callback();
    };
    this._server.onData(stream, this.session, (err, reply) => {
      // As smtp-server does for DATA: answer once the handler has read the whole message.
      if (stream.readable && !stream.readableEnded) {
        stream.once('end', () => finish(err, reply));
        if (stream.readableFlowing === null) stream.resume();
        return;
      }
      finish(err, reply);
    });
    stream.end(message);
  };
}

declare module 'smtp-server' {
  interface SMTPServerOptions {
    /** BURL (RFC 4468, src/smtp/burl.ts): resolves the URL of a BURL command; without it BURL is not offered. */
    burl?: BurlFetch;
  }
}
