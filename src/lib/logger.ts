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
