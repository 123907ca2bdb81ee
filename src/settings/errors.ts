/**
 * What the settings store throws for a request it refuses. The CLI and the admin API map `code` to an exit code or
 * an HTTP status: invalid / unknown-key → usage error (64, 400), exists → conflict (1, 409), not-found → (1, 404).
 * A database that cannot answer (locked past the busy timeout, disk full, I/O error) is a TempFailure instead.
 */
import { TempFailure } from '../lib/errors.js';

export type SettingsErrorCode = 'invalid' | 'exists' | 'not-found' | 'unknown-key';

export class SettingsError extends Error {
  readonly code: SettingsErrorCode;
  /** The setting key, when the error is about one. */
  readonly key?: string;
  constructor(code: SettingsErrorCode, message: string, key?: string) {
    super(message);
    this.name = 'SettingsError';
    this.code = code;
    this.key = key;
  }
}

export function invalid(message: string, key?: string): SettingsError {
  return new SettingsError('invalid', message, key);
}

const TEMPORARY_SQLITE = /^SQLITE_(BUSY|LOCKED|IOERR|FULL|CANTOPEN|PROTOCOL|NOMEM)/;

/** SQLite errors that a retry may cure become TempFailure; anything else is rethrown unchanged. */
export function classifySqliteError(err: unknown): unknown {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && TEMPORARY_SQLITE.test(code)) {
    return new TempFailure(`settings database: ${(err as Error).message}`, { cause: err });
  }
  return err;
}
