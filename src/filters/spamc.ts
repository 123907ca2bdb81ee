/**
 * A SPAMC/1.5 client for spamd over TCP (no maintained npm package speaks it). One connection per request, as
 * spamc does. References are to spamd/PROTOCOL in the SpamAssassin source ("The SpamAssassin Network Protocol"),
 * cited by its section names.
 *
 * Every failure — connection refused, timeout, a non-zero response code, a reply we cannot parse — throws a
 * SpamcError: the caller decides between tempfail and accept (filter.spam.onFailure), never a silent pass.
 */
import { connect, type Socket } from 'node:net';

export interface SpamcOptions {
  host: string;
  port: number;
  /** Longest time for the whole exchange (connect, send, score, reply). */
  timeoutMs: number;
}

export interface SpamCheckResult {
  /** spamd's own opinion against its own required_score; callers compare `score` with their thresholds instead. */
  isSpam: boolean;
  score: number;
  /** spamd's required_score. */
  threshold: number;
  /** Rule names that hit, e.g. ['GTUBE', 'MISSING_DATE']. */
  symbols: string[];
}

export interface SpamcRequestOptions {
  /** PROTOCOL "Headers" → User: whose preferences and Bayes database spamd uses (spamd's default user when absent). */
  user?: string;
}

export class SpamcError extends Error {
  /** The sysexits.h code spamd answered with (PROTOCOL "Synopsis"), when it answered. */
  readonly code?: number;
  constructor(message: string, code?: number, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SpamcError';
    this.code = code;
  }
}

interface SpamdResponse {
  code: number;
  message: string;
  /** Header names lower-cased; a repeated header keeps every value (PROTOCOL "Headers": multiple may appear). */
  headers: Map<string, string[]>;
  body: Buffer;
}

const PROTOCOL_VERSION = '1.5';
/** PROTOCOL "Headers" → User: "format is that of a traditional UNIX username"; we only refuse what would break the request. */
const USER_RE = /^[\x21-\x7e]{1,256}$/;

export class Spamc {
  constructor(readonly options: SpamcOptions) {}

  /** PROTOCOL "Commands" → PING: resolves when spamd answers PONG, throws otherwise. */
  async ping(): Promise<void> {
    const res = await this.request('PING', null);
    if (!/\bPONG\b/.test(res.message)) throw new SpamcError(`spamd: unexpected PING reply "${res.message}"`);
  }

  /**
   * Scores a message with SYMBOLS (PROTOCOL "Commands": CHECK's "Spam:" header plus the rule names as the body).
   */
  async check(message: Buffer, opts: SpamcRequestOptions = {}): Promise<SpamCheckResult> {
    const res = await this.request('SYMBOLS', message, userHeader(opts.user));
    const spam = res.headers.get('spam')?.[0];
    if (spam === undefined) throw new SpamcError('spamd: reply has no Spam header');
    // "Spam: True ; 15 / 5" (PROTOCOL "Commands", CHECK); protocol 1.0 said Yes/No instead of True/False.
    const m = /^\s*(true|false|yes|no)\s*;\s*(-?\d+(?:\.\d+)?)\s*\/\s*(-?\d+(?:\.\d+)?)\s*$/i.exec(spam);
    if (!m) throw new SpamcError(`spamd: cannot parse Spam header "${spam}"`);
    // The symbol line may or may not end with CRLF, and there may be several (PROTOCOL "Commands", SYMBOLS).
    const symbols = res.body
      .toString('latin1')
      .split(/[,\r\n]+/)
      .map((s) => s.trim())
      .filter(Boolean);
    return {
      isSpam: /^(true|yes)$/i.test(m[1]),
      score: Number(m[2]),
      threshold: Number(m[3]),
      symbols,
    };
  }

  /**
   * Teaches the Bayes database that `message` is spam or ham: TELL with Message-class and Set: local (PROTOCOL
   * "Commands", TELL). Resolves true when spamd learned it (DidSet: local), false when there was nothing to do —
   * the message was already learned as that class. Learning as the other class relearns it (true).
   * spamd must run with --allow-tell.
   */
  async learn(message: Buffer, kind: 'spam' | 'ham', opts: SpamcRequestOptions = {}): Promise<boolean> {
    const res = await this.request('TELL', message, [`Message-class: ${kind}`, 'Set: local', ...userHeader(opts.user)]);
    return headerHas(res, 'didset', 'local');
  }

  /** Removes a message from the Bayes database (TELL with Remove: local); true when spamd reports DidRemove: local. */
  async forget(message: Buffer, opts: SpamcRequestOptions = {}): Promise<boolean> {
    const res = await this.request('TELL', message, ['Remove: local', ...userHeader(opts.user)]);
    return headerHas(res, 'didremove', 'local');
  }

  /**
   * One request/response exchange (PROTOCOL "Synopsis"): the request line, headers, a blank line, the body; then we
   * shut down our side and read until spamd closes the connection.
   */
  private request(method: string, body: Buffer | null, headers: string[] = []): Promise<SpamdResponse> {
    const { host, port, timeoutMs } = this.options;
    const lines = [`${method} SPAMC/${PROTOCOL_VERSION}`];
    // Content-length is required from protocol 1.2 on (PROTOCOL "Headers").
    if (body) lines.push(`Content-length: ${body.length}`);
    lines.push(...headers);
    const head = Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1');

    return new Promise<SpamdResponse>((resolve, reject) => {
      const chunks: Buffer[] = [];
      let settled = false;
      let socket: Socket | undefined;
      const finish = (err: Error | null, res?: SpamdResponse) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        socket?.destroy();
        if (err) reject(err);
        else resolve(res!);
      };
      const timer = setTimeout(
        () => finish(new SpamcError(`spamd ${host}:${port}: no answer to ${method} within ${timeoutMs} ms`)),
        timeoutMs,
      );
      socket = connect({ host, port });
      socket.on('connect', () => {
        socket!.write(head);
        // Half-close after the body: "After each side is done writing, it shuts down its side" (PROTOCOL "Synopsis").
        if (body) socket!.end(body);
        else socket!.end();
      });
      socket.on('data', (d: Buffer) => chunks.push(d));
      socket.on('error', (err) =>
        finish(new SpamcError(`spamd ${host}:${port}: ${(err as NodeJS.ErrnoException).code ?? err.message}`, undefined, { cause: err })),
      );
      socket.on('end', () => {
        try {
          finish(null, parseResponse(Buffer.concat(chunks), method));
        } catch (err) {
          finish(err as Error);
        }
      });
      socket.on('close', () => finish(new SpamcError(`spamd ${host}:${port}: connection closed during ${method}`)));
    });
  }
}

function userHeader(user: string | undefined): string[] {
  if (user === undefined) return [];
  if (!USER_RE.test(user)) throw new SpamcError(`invalid spamd user name "${user}"`);
  return [`User: ${user}`];
}

function headerHas(res: SpamdResponse, name: string, value: string): boolean {
  return (res.headers.get(name) ?? []).some((v) => v.split(',').some((p) => p.trim().toLowerCase() === value));
}

/**
 * "SPAMD/1.1 0 EX_OK\r\n" headers "\r\n" body. A non-zero code is an error and comes without a body (PROTOCOL
 * "Synopsis"). PING's reply may end right after the status line.
 */
function parseResponse(raw: Buffer, method: string): SpamdResponse {
  if (raw.length === 0) throw new SpamcError(`spamd closed the connection without answering ${method}`);
  const sep = raw.indexOf('\r\n\r\n');
  const headText = raw.subarray(0, sep < 0 ? raw.length : sep).toString('latin1');
  let body = sep < 0 ? Buffer.alloc(0) : raw.subarray(sep + 4);
  const [statusLine, ...headerLines] = headText.split('\r\n');
  const m = /^SPAMD\/(\d+\.\d+)\s+(\d+)\s*(.*)$/.exec(statusLine);
  if (!m) throw new SpamcError(`spamd: unexpected reply to ${method}: "${statusLine.slice(0, 200)}"`);
  const code = Number(m[2]);
  const message = m[3].trim();
  if (code !== 0) throw new SpamcError(`spamd refused ${method}: ${code} ${message}`, code);
  const headers = new Map<string, string[]>();
  for (const line of headerLines) {
    const i = line.indexOf(':');
    if (i <= 0) continue; // "As-yet-undefined headers should not be treated as errors" (PROTOCOL "Headers")
    const name = line.slice(0, i).trim().toLowerCase();
    headers.set(name, [...(headers.get(name) ?? []), line.slice(i + 1).trim()]);
  }
  const len = headers.get('content-length')?.[0];
  if (len !== undefined && /^\d+$/.test(len) && Number(len) < body.length) body = body.subarray(0, Number(len));
  return { code, message, headers, body };
}
