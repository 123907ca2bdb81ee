/**
 * The public contract of the Sieve interpreter (RFC 5228 and the extensions in SIEVE_EXTENSIONS). The interpreter
 * is pure: it reads the message through SieveMessage and the world through SieveEnvironment, and returns what to
 * do; the delivery agent carries the actions out, the ManageSieve server uses compile() to check scripts.
 */

/** A compile or run-time error at a place in the script (1-based line and column of the offending token). */
export interface SieveError {
  line: number;
  column: number;
  message: string;
}

/** A script that compiled: opaque to callers (pass it to execute()). */
export interface CompiledScript {
  readonly kind: 'sieve-script';
  /** The capabilities the script required (RFC 5228 §3.2), for logs. */
  readonly requires: readonly string[];
  /** Internal: the checked syntax tree. */
  readonly body: unknown;
}

export type CompileResult = { ok: true; script: CompiledScript } | { ok: false; errors: SieveError[] };

export interface CompileOptions {
  /** Pigeonhole's sieve_max_script_size defaults to 1M; so do we (in bytes of UTF-8). */
  maxScriptBytes?: number;
  /** The capability strings a script may require; default all of SIEVE_EXTENSIONS. */
  extensions?: ReadonlySet<string>;
  /** Compiling an included script (RFC 6609): `global` and `return` are allowed anywhere; nothing changes else. */
  included?: boolean;
}

export interface SieveEnvelope {
  /** The SMTP MAIL FROM address, '' for the null reverse-path <> (RFC 5228 §5.4). */
  from: string;
  /** The SMTP RCPT TO address this delivery is for (the original one, before aliasing). */
  to: string;
  /** The authenticated submitter (the "auth" envelope-part), when there was one. */
  auth?: string;
}

/** One header field of the message's top-level header, in order. */
export interface SieveHeaderField {
  /** The field name as written. */
  name: string;
  /** The raw value, unfolded (CRLFs before whitespace removed), leading whitespace after the colon removed. */
  value: string;
}

export interface SieveMessage {
  /** Decoded values (RFC 2047 words decoded, RFC 5228 §2.7.2), in header order, of the top-level header. */
  headers(name: string): string[];
  /** Raw (unfolded, not decoded) values in header order. */
  rawHeaders(name: string): string[];
  /** All top-level header fields in order (editheader works on a copy of these). */
  headerFields(): SieveHeaderField[];
  /** RFC 5228 §5.9: the size in octets of the message as stored. */
  size: number;
  /**
   * RFC 5173 body transforms: 'raw' is the undecoded body after the header; 'content' the decoded (transfer
   * encoding and charset) bodies of the leaf parts whose type matches one of contentTypes ('' matches all, 'text'
   * a main type, 'text/html' a full type); 'text' the text of the text parts (HTML reduced to text).
   */
  body(transform: 'raw' | 'content' | 'text', contentTypes?: string[]): Promise<string[]> | string[];
  envelope: SieveEnvelope;
}

export interface SieveLimits {
  /** Actions (keep, fileinto, redirect, ...) a run may produce; RFC 5228 §2.10.6 says implementations may limit. */
  maxActions?: number;
  /** Redirects a run may produce (a loop amplifier otherwise). */
  maxRedirects?: number;
  /** Wall time of a run, checked between commands and while matching. */
  maxRunMs?: number;
  /** RFC 6609 §3.2: nesting of include. */
  maxIncludeDepth?: number;
}

export interface SieveEnvironment {
  /** RFC 5490 §3.1 mailboxexists, and fileinto without :create deciding nothing (the deliverer creates or not). */
  mailboxExists(name: string): Promise<boolean> | boolean;
  /** RFC 6609: the text of a personal or global script by name, or null if there is none. */
  loadInclude(name: string, location: 'personal' | 'global'): Promise<string | null> | string | null;
  /**
   * RFC 7352: true if this id was seen within the last `seconds`. The interpreter does not record it; the caller
   * records the ids of ExecuteResult.duplicateIds only when the run completed and its actions were carried out (§3).
   */
  duplicateSeen(id: string, seconds: number): Promise<boolean> | boolean;
  /** "Now" for currentdate (RFC 5260 §5) and tests; default new Date(). */
  now?: Date;
  /** The local time zone offset for date/currentdate without :zone, as "+hhmm"/"-hhmm"; default the process's. */
  zone?: string;
  limits?: SieveLimits;
}

/**
 * RFC 5293 §7: actions that store or send the message use the header as edited when the action ran. `headers` is
 * that header (the whole top-level header, to write in place of the original) when editheader had changed it by
 * then; absent, the message is stored or sent as it came.
 */
export interface EditedHeader {
  headers?: SieveHeaderField[];
}

export type SieveAction =
  | ({ type: 'keep'; flags: string[] } & EditedHeader)
  | ({ type: 'fileinto'; mailbox: string; flags: string[]; copy: boolean; create: boolean } & EditedHeader)
  | ({ type: 'redirect'; address: string; copy: boolean } & EditedHeader)
  | { type: 'reject'; reason: string; ereject: boolean }
  | { type: 'discard' }
  | {
      type: 'vacation';
      /** RFC 5230 §4.2: the explicit :handle or one derived from reason, :subject, :from and :mime. */
      handle: string;
      /** :days converted to seconds, or :seconds (RFC 6131); the default is 7 days. */
      periodSeconds: number;
      subject?: string;
      from?: string;
      /** :addresses — further addresses of the user, besides those the deliverer knows (RFC 5230 §4.5). */
      addresses: string[];
      /** :mime — reason is a MIME entity (headers and body) rather than plain text (RFC 5230 §4.8). */
      mime: boolean;
      reason: string;
    };

export interface ExecuteResult {
  /** The actions to carry out, the implicit keep included when it applies (RFC 5228 §2.10.2). */
  actions: SieveAction[];
  /**
   * editheader (RFC 5293): when the script added or deleted header fields, the complete top-level header at the
   * end of the run, in order (src/sieve/message.ts applyEditedHeaders writes it). Undefined when the header was not
   * edited. Each keep/fileinto/redirect action carries the header as it was when it ran (`headers`); this is the
   * one of the implicit keep (RFC 5293 §7: the implicit keep comes after all edits). DSNs/MDNs for reject use the
   * original header (§7).
   */
  editedHeaders?: SieveHeaderField[];
  /** RFC 7352 §3: the duplicate ids to record, only after the actions were carried out successfully. */
  duplicateIds: { id: string; seconds: number; /** :last — the period counts from the latest sighting */ last: boolean }[];
  /** What the script did, for the delivery log. */
  log: string[];
}

/** A run-time error or an exceeded limit. The caller delivers to INBOX (implicit keep) and logs it. */
export class SieveRuntimeError extends Error {
  readonly line: number;
  readonly column: number;
  constructor(message: string, line = 0, column = 0) {
    super(line > 0 ? `line ${line}: ${message}` : message);
    this.name = 'SieveRuntimeError';
    this.line = line;
    this.column = column;
  }
}
