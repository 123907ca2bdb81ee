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

/**
 * An SMTP reply carried as an error, the way smtp-server hooks expect (`responseCode`, and `message` sent after
 * the code). The message starts with the RFC 3463 enhanced status code: "5.1.1 <x@y>: Recipient address rejected".
 */
export class SmtpError extends Error {
  readonly code: number;
  readonly enhanced: string;
  readonly temporary: boolean;
  /** The reply text without the enhanced code. */
  readonly text: string;
  constructor(code: number, enhanced: string, text: string) {
    super(`${enhanced} ${text}`);
    this.name = 'SmtpError';
    this.code = code;
    this.enhanced = enhanced;
    this.text = text;
    this.temporary = code >= 400 && code < 500;
  }
  get responseCode(): number {
    return this.code;
  }
}

/** Anything we did not classify is temporary: better a retry than a lost or wrongly refused message. */
export function isTemporary(err: unknown): boolean {
  if (err instanceof SmtpError) return err.temporary;
  return true;
}

/** Exit codes shared by the CLI (sysexits.h). */
export const EXIT = { ok: 0, no: 1, usage: 64, config: 78, tempfail: 75 } as const;
