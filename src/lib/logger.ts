import { hostname as osHostname } from 'node:os';
import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * One structured line per event (DESIGN.md §4). Components take a child logger named as in the seed's maillog
 * (`transfer/smtpd`, `queue`, `delivery`, `imap`, …) via `log.child({ component })`.
 */
export function createLogger(level: string = process.env.POSTERN_LOG_LEVEL ?? 'info', destination?: NodeJS.WritableStream): Logger {
  return pino(
    { level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime },
    // Logs go to stderr so that CLI output on stdout stays machine-readable (`--json`).
    (destination ?? pino.destination({ fd: 2, sync: true })) as pino.DestinationStream,
  );
}

/** A logger that drops everything: for unit tests and for CLI commands that print their own results. */
export const silentLogger: Logger = pino({ level: 'silent' });

// ---- the server's log: JSON or the seed's maillog text, on stderr or in the seed's two files ----------------------

export interface ServerLogOptions {
  level: string;
  /** json: one JSON object per line (pino); text: the seed's maillog shape (see formatMaillogLine). */
  format: 'json' | 'text';
  /** Mail transactions (the seed's /var/log/maillog); default stderr. */
  file?: string;
  /** IMAP and POP3 logins and logouts (the seed's /var/log/imap); default with the rest. */
  imapFile?: string;
  /** The host name written in text lines (its first label, as syslog does). */
  host?: string;
}

export interface ServerLogger {
  log: Logger;
  /** Reopens the files by name (after logrotate moved them: SIGUSR1, as for Postfix's postlog / Dovecot). */
  reopen(): void;
  /** Flushes and closes the files. */
  close(): void;
}

export class LogFileError extends Error {}

interface Sink {
  write(s: string): unknown;
  reopen?(): void;
  flushSync?(): void;
  end?(): void;
}

function open(key: string, path: string): Sink {
  try {
    return pino.destination({ dest: path, sync: true, mkdir: true }) as unknown as Sink;
  } catch (err) {
    throw new LogFileError(`${key} ${path}: cannot open for writing: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/** Lines that belong in the seed's `imap` log: the IMAP, POP3 and ManageSieve servers' own lines and their logins. */
export function isImapLine(line: Record<string, unknown>): boolean {
  const c = line.component;
  // ManageSieve too: Dovecot's managesieve logs beside its imap and pop3 lines.
  const mailbox = (x: unknown) => x === 'imap' || x === 'pop3' || x === 'managesieve';
  return mailbox(c) || (c === 'auth' && mailbox(line.protocol));
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const LEVEL_WORD: Record<number, string> = { 40: 'warning: ', 50: 'error: ', 60: 'fatal: ' };
/** Fields every line has, or that the text line shows in its own place. */
const SHOWN_ELSEWHERE = new Set(['level', 'time', 'pid', 'hostname', 'msg', 'component', 'queueId', 'v']);
const ADDRESS_KEYS = new Set(['from', 'to', 'sender', 'recipient', 'rcpt', 'address']);

/** `Dec  1 09:42:58`: syslog's timestamp (RFC 3164 §4.1.2), local time, day padded with a space. */
function syslogTime(d: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${MONTHS[d.getMonth()]} ${String(d.getDate()).padStart(2, ' ')} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

function fieldValue(key: string, v: unknown): string {
  if (ADDRESS_KEYS.has(key) && typeof v === 'string') return `<${v}>`;
  if (ADDRESS_KEYS.has(key) && Array.isArray(v)) return v.map((a) => `<${String(a)}>`).join(',');
  if (Array.isArray(v)) return v.map((x) => (typeof x === 'object' ? JSON.stringify(x) : String(x))).join(',');
  if (v && typeof v === 'object') {
    const e = v as { message?: unknown; type?: unknown };
    if (key === 'err' && typeof e.message === 'string') return JSON.stringify(e.message);
    return JSON.stringify(v);
  }
  const s = String(v);
  return /[\s,"=]/.test(s) || s === '' ? JSON.stringify(s) : s;
}

/**
 * One log object as a line of the seed's maillog (Postfix's shape): time, host, `postern/<component>[pid]:`, the
 * queue id, the message, then the other fields as `key=value` (addresses in angle brackets), e.g.
 *   Dec  1 09:42:58 mx postern/transfer/smtpd[4242]: 1M8RFRTT6DWTN8KZ: queued as 1M8RFRTT6DWTN8KZ, from=<a@b.example>, to=<c@d.example>, size=812
 */
export function formatMaillogLine(line: Record<string, unknown>, host: string): string {
  const time = typeof line.time === 'string' || typeof line.time === 'number' ? new Date(line.time) : new Date();
  const component = typeof line.component === 'string' ? `postern/${line.component}` : 'postern';
  const queueId = typeof line.queueId === 'string' && line.queueId ? `${line.queueId}: ` : '';
  const level = LEVEL_WORD[line.level as number] ?? '';
  const msg = typeof line.msg === 'string' ? line.msg.replace(/[\r\n]+/g, ' ') : '';
  const fields = Object.entries(line)
    .filter(([k, v]) => !SHOWN_ELSEWHERE.has(k) && v !== undefined && v !== null)
    .map(([k, v]) => `${k}=${fieldValue(k, v)}`);
  const rest = [msg, ...fields].filter(Boolean).join(', ');
  return `${syslogTime(time)} ${host} ${component}[${line.pid ?? process.pid}]: ${queueId}${level}${rest}`;
}

/**
 * The logger of `postern serve` (config `log`): JSON or text, to stderr or `log.file`, with the IMAP/POP3 lines in
 * `log.imapFile` when set. Files are opened at start (a path that cannot be written is a LogFileError naming the
 * key) and reopened by name with reopen(), so logrotate can move them and signal SIGUSR1.
 */
export function createServerLogger(o: ServerLogOptions): ServerLogger {
  const main: Sink = o.file ? open('log.file', o.file) : (pino.destination({ fd: 2, sync: true }) as unknown as Sink);
  const imap = o.imapFile ? open('log.imapFile', o.imapFile) : undefined;
  const host = (o.host ?? osHostname()).split('.')[0] || 'localhost';
  const files = [o.file ? main : undefined, imap].filter((s): s is Sink => s !== undefined);
  const pinoOptions = { level: o.level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime };
  let log: Logger;
  if (o.format === 'json' && !imap) {
    log = pino(pinoOptions, main as unknown as pino.DestinationStream);
  } else {
    const stream = {
      write(chunk: string) {
        // pino writes one JSON object per call, newline-terminated.
        for (const text of chunk.split('\n')) {
          if (!text) continue;
          let line: Record<string, unknown>;
          try {
            line = JSON.parse(text) as Record<string, unknown>;
          } catch {
            main.write(text + '\n');
            continue;
          }
          const target = imap && isImapLine(line) ? imap : main;
          target.write((o.format === 'text' ? formatMaillogLine(line, host) : text) + '\n');
        }
      },
    };
    log = pino(pinoOptions, stream);
  }
  return {
    log,
    reopen() {
      for (const f of files) f.reopen?.();
    },
    close() {
      for (const f of files) {
        f.flushSync?.();
        f.end?.();
      }
    },
  };
}
