/**
 * Errors that know their class (DESIGN.md §3 "Errors").
 *
 * `TempFailure` is what every core component throws when a dependency (AD, clamd, spamd, the disk) cannot answer.
 * Callers map it to a 4xx reply or to exit code 75 (EX_TEMPFAIL); it is never turned into "unknown" or "wrong password".
 */
export class TempFailure extends Error {
  readonly temporary = true;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TempFailure';
  }
}

/** An SMTP reply carried as an error, the way smtp-server hooks expect (`responseCode`). */
export class SmtpError extends Error {
  readonly code: number;
  readonly enhanced: string;
  readonly temporary: boolean;
  constructor(code: number, enhanced: string, message: string) {
    super(message);
    this.name = 'SmtpError';
    this.code = code;
    this.enhanced = enhanced;
    this.temporary = code >= 400 && code < 500;
  }
  get responseCode(): number {
    return this.code;
  }
  /** Reply text as sent on the wire: "5.1.1 message". */
  get reply(): string {
    return `${this.enhanced} ${this.message}`;
  }
}

/** Anything we did not classify is temporary: better a retry than a lost or wrongly refused message. */
export function isTemporary(err: unknown): boolean {
  if (err instanceof SmtpError) return err.temporary;
  return true;
}

/** Exit codes shared by the CLI (sysexits.h). */
export const EXIT = { ok: 0, no: 1, usage: 64, config: 78, tempfail: 75 } as const;
