/**
 * The filter pipeline (DESIGN.md §3 "Filters"; STYLE.md "Checks per phase returning a result"): runs the stages of
 * one phase in order and turns their verdicts into one result for the SMTP hook.
 *
 * - `accept` and `mark` go on; `mark` adds header fields (and maybe a new Subject); tags of every verdict are merged
 *   into `ctx.tags`, so later stages — and later phases of the same transaction — see them.
 * - `reject`, `discard`, `tempfail` stop.
 * - A stage that throws or does not answer in time cannot answer: `451 4.7.1 <stage> temporarily unavailable`
 *   (DESIGN.md §6 "Temporary beats wrong"), or, where the admin chose it for that stage (`filter.*.onFailure`),
 *   `accept` with a warning in the log and the stage's name in `tags.failedStages`. Never a silent pass, never a 5xx.
 *
 * Every verdict is one log line: component `filter`, the queue id, the client, the stage, the action, the reply and
 * the tags.
 *
 * The stages of a parallel phase (default: data) are started together, so clamd and spamd work at the same time
 * and the phase takes as long as its slowest stage, not the sum. Their verdicts are still read in stage order, with
 * the sequential meaning: the first reject/discard/tempfail in stage order decides (a later stage's verdict is
 * not waited for and not used), marks are collected in stage order, tags are merged in stage order. What a
 * parallel stage must not do is read tags that another stage of the same phase sets (none of the data stages
 * does: they read the mail and rcpt phases' tags).
 */
import { encodeWord } from 'nodemailer/lib/mime-funcs';
import type { Logger } from '../lib/logger.js';
import { decodeWords, headerFields, headerSectionEnd } from './mime.js';
import type { TraceRecorder } from '../trace/types.js';
import type { FilterAction, FilterContext, FilterPhase, FilterStage, FilterVerdict } from './types.js';

export type SmtpReply = NonNullable<FilterVerdict['reply']>;

export interface StageVerdictRecord {
  stage: string;
  action: FilterAction;
  ms: number;
}

export interface PipelineResult {
  /** `mark` verdicts end as `accept` with headers. */
  action: 'accept' | 'reject' | 'discard' | 'tempfail';
  /** Set for reject and tempfail (filled with a default when the stage gave none). */
  reply?: SmtpReply;
  /** Header fields from `mark` verdicts, in stage order, to prepend with applyMarks. */
  headers: [string, string][];
  /** The tags set in this run (ctx.tags holds them too, merged with earlier ones). */
  tags: Record<string, unknown>;
  /** The Subject to set, from the last `mark` that gave one. */
  subject?: string;
  verdicts: StageVerdictRecord[];
}

export type FailurePolicy = 'tempfail' | 'accept';

export interface FilterPipelineOptions {
  stages: FilterStage[];
  log: Logger;
  /** What a stage that throws or times out means; default tempfail for every stage. */
  onFailure?: (stage: string) => FailurePolicy;
  /** How long a stage may take before it counts as failed; default 30 s. */
  timeoutMs?: number;
  /** Per-stage overrides of timeoutMs, by stage name. */
  stageTimeoutsMs?: Record<string, number>;
  /** Phases whose stages run concurrently (verdicts still applied in stage order); default ['data']. */
  parallel?: FilterPhase[];
  /**
   * Message trace: every data-phase verdict is an event of the message (ctx.id is its queue id from the data phase
   * on; verdicts of the earlier phases belong to a transaction that has no message yet, they are in the log).
   */
  trace?: TraceRecorder;
}

export const DEFAULT_STAGE_TIMEOUT_MS = 30_000;

/** Postfix's access-map default (access_map_reject_code 554) for every phase. */
const DEFAULT_REJECT: SmtpReply = { code: 554, enhanced: '5.7.1', text: 'Rejected by policy' };
const DEFAULT_TEMPFAIL: SmtpReply = { code: 451, enhanced: '4.7.1', text: 'Temporarily unable to process, try again later' };

export function stageUnavailableReply(stage: string): SmtpReply {
  return { code: 451, enhanced: '4.7.1', text: `${stage} temporarily unavailable, try again later` };
}

class StageTimeout extends Error {
  constructor(stage: string, ms: number) {
    super(`${stage} did not answer within ${ms} ms`);
    this.name = 'StageTimeout';
  }
}

export class FilterPipeline {
  private readonly stages: FilterStage[];
  private readonly log: Logger;
  private readonly onFailure: (stage: string) => FailurePolicy;
  private readonly timeoutMs: number;
  private readonly stageTimeoutsMs: Record<string, number>;
  private readonly parallel: Set<FilterPhase>;
  private readonly trace: TraceRecorder | undefined;

  constructor(opts: FilterPipelineOptions) {
    this.trace = opts.trace;
    this.parallel = new Set(opts.parallel ?? ['data']);
    this.stages = [...opts.stages];
    this.log = opts.log.child({ component: 'filter' });
    this.onFailure = opts.onFailure ?? (() => 'tempfail');
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_STAGE_TIMEOUT_MS;
    this.stageTimeoutsMs = opts.stageTimeoutsMs ?? {};
  }

  /** The stages that run in `phase`, in order (for the SMTP hooks to skip a phase with none). */
  stagesFor(phase: FilterPhase): FilterStage[] {
    return this.stages.filter((s) => s.phase === phase);
  }

  async run(phase: FilterPhase, ctx: FilterContext): Promise<PipelineResult> {
    const result: PipelineResult = { action: 'accept', headers: [], tags: {}, verdicts: [] };
    const stages = this.stagesFor(phase);
    type Outcome = { ok: true; verdict: FilterVerdict; ms: number } | { ok: false; err: unknown; ms: number };
    const start = (stage: FilterStage): Promise<Outcome> => {
      const started = performance.now();
      const ms = () => Math.round((performance.now() - started) * 10) / 10;
      return this.check(stage, ctx).then(
        (verdict) => ({ ok: true, verdict, ms: ms() }),
        (err: unknown) => ({ ok: false, err, ms: ms() }),
      );
    };
    // Parallel: every stage starts now; the loop below still takes their outcomes one by one in stage order.
    const early = this.parallel.has(phase) && stages.length > 1 ? stages.map(start) : undefined;
    for (let i = 0; i < stages.length; i++) {
      const stage = stages[i];
      const outcome = await (early ? early[i] : start(stage));
      const ms = outcome.ms;
      const failure: unknown = outcome.ok ? null : outcome.err;
      let verdict = outcome.ok ? outcome.verdict : this.failureVerdict(stage, ctx);
      verdict = normalizeVerdict(verdict);
      result.verdicts.push({ stage: stage.name, action: verdict.action, ms });
      if (verdict.tags) {
        Object.assign(ctx.tags, verdict.tags);
        Object.assign(result.tags, verdict.tags);
      }
      this.logVerdict(stage, ctx, verdict, ms, failure);
      if (phase === 'data' && this.trace) this.traceVerdict(stage, ctx, verdict, failure);
      switch (verdict.action) {
        case 'accept':
          continue;
        case 'mark':
          if (verdict.headers) result.headers.push(...verdict.headers);
          if (verdict.subject !== undefined) result.subject = verdict.subject;
          continue;
        case 'reject':
        case 'tempfail':
          result.action = verdict.action;
          result.reply = verdict.reply;
          return result;
        case 'discard':
          result.action = 'discard';
          return result;
      }
    }
    return result;
  }

  private async check(stage: FilterStage, ctx: FilterContext): Promise<FilterVerdict> {
    const ms = this.stageTimeoutsMs[stage.name] ?? this.timeoutMs;
    let timer: NodeJS.Timeout | undefined;
    const pending = Promise.resolve().then(() => stage.check(ctx));
    // A stage that is given up on may still fail later: that must not become an unhandled rejection.
    pending.catch(() => undefined);
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new StageTimeout(stage.name, ms)), ms);
    });
    try {
      const verdict = await Promise.race([pending, timeout]);
      if (!verdict || typeof verdict !== 'object' || typeof verdict.action !== 'string') {
        throw new Error(`${stage.name} returned no verdict`);
      }
      return verdict;
    } finally {
      clearTimeout(timer);
    }
  }

  private failureVerdict(stage: FilterStage, ctx: FilterContext): FilterVerdict {
    let policy: FailurePolicy = 'tempfail';
    try {
      policy = this.onFailure(stage.name);
    } catch {
      // The policy itself cannot answer (settings unreadable): the safe answer is a retry.
    }
    if (policy === 'accept') {
      const failed = Array.isArray(ctx.tags.failedStages) ? (ctx.tags.failedStages as string[]) : [];
      return { action: 'accept', tags: { failedStages: [...failed, stage.name] } };
    }
    return { action: 'tempfail', reply: stageUnavailableReply(stage.name) };
  }

  private traceVerdict(stage: FilterStage, ctx: FilterContext, verdict: FilterVerdict, failure: unknown): void {
    this.trace!.record({
      queueId: ctx.id,
      type: 'filter',
      detail: {
        stage: stage.name,
        action: verdict.action,
        ...(verdict.reply ? { reply: `${verdict.reply.code} ${verdict.reply.enhanced} ${verdict.reply.text}` } : {}),
        ...(verdict.tags && Object.keys(verdict.tags).length ? { tags: verdict.tags } : {}),
        ...(failure ? { error: failure instanceof Error ? failure.message : String(failure) } : {}),
      },
    });
  }

  private logVerdict(stage: FilterStage, ctx: FilterContext, verdict: FilterVerdict, ms: number, failure: unknown): void {
    const line: Record<string, unknown> = {
      queueId: ctx.id,
      client: ctx.client.address,
      phase: stage.phase,
      stage: stage.name,
      action: verdict.action,
      ms,
    };
    if (verdict.reply) line.reply = `${verdict.reply.code} ${verdict.reply.enhanced} ${verdict.reply.text}`;
    if (verdict.tags && Object.keys(verdict.tags).length) line.tags = verdict.tags;
    if (verdict.headers?.length) line.headers = verdict.headers.map(([n]) => n);
    if (failure) {
      line.err = failure instanceof Error ? failure.message : String(failure);
      this.log.warn(
        line,
        verdict.action === 'accept'
          ? `filter ${stage.name} failed; message accepted unchecked by policy`
          : `filter ${stage.name} failed; temporary failure`,
      );
      return;
    }
    this.log.info(line, `filter ${stage.name}: ${verdict.action}`);
  }
}

/**
 * Fills in missing replies and keeps the classes apart: a reject answers 5xx, a tempfail 4xx. A stage that got it
 * wrong gets the default reply of its action, since a 5xx for "try again" loses mail and a 4xx for "no" retries
 * for days.
 */
function normalizeVerdict(v: FilterVerdict): FilterVerdict {
  if (v.action === 'reject' && !(v.reply && v.reply.code >= 500 && v.reply.code < 600)) return { ...v, reply: DEFAULT_REJECT };
  if (v.action === 'tempfail' && !(v.reply && v.reply.code >= 400 && v.reply.code < 500)) return { ...v, reply: DEFAULT_TEMPFAIL };
  return v;
}

// ---- Applying marks to the message --------------------------------------------------------------------------------

export interface ApplyMarksOptions {
  /**
   * Names of fields to remove before the new ones are prepended, case-insensitive: a spam stage passes its own
   * (X-Spam-Flag, X-Spam-Status…) so a sender cannot pre-set them.
   */
  remove?: string[];
}

const MAX_LINE = 78; // RFC 5322 §2.1.1: SHOULD be no more than 78 characters

/**
 * Prepends `headers` to `message` and sets the Subject; the body and every other header byte are left alone.
 *
 * Values are made safe for the header: line breaks become spaces (no header injection), non-ASCII text becomes
 * RFC 2047 encoded words, and long values are folded at spaces (RFC 5322 §2.2.3).
 *
 * When `subject` is the current Subject (decoded) with something in front — the spam prefix — only the prefix is
 * inserted in front of the original value, so the original's encoded words and charset stay as they were.
 * Otherwise the first Subject field is replaced in place, or added at the top when there is none.
 */
export function applyMarks(message: Buffer, headers: [string, string][], subject?: string, opts: ApplyMarksOptions = {}): Buffer {
  const end = headerSectionEnd(message);
  const fields = headerFields(message, end);
  const remove = new Set((opts.remove ?? []).map((n) => n.toLowerCase()));
  // Replacements in the existing header, as [start, end, bytes], in order.
  const edits: [number, number, Buffer][] = [];
  for (const f of fields) if (remove.has(f.name.toLowerCase())) edits.push([f.start, f.end, Buffer.alloc(0)]);

  const top: string[] = headers.map(([name, value]) => formatField(safeName(name), value));
  if (subject !== undefined) {
    const current = fields.find((f) => f.name.toLowerCase() === 'subject' && !remove.has('subject'));
    if (current) {
      edits.push([current.start, current.end, subjectField(subject, message.subarray(current.valueStart, current.end))]);
      edits.sort((a, b) => a[0] - b[0]);
    } else {
      top.push(formatField('Subject', subject));
    }
  }

  // Nothing to add, remove or replace (no filter marks, no forged X-Spam fields): the message as it is, uncopied.
  if (top.length === 0 && edits.length === 0) return message;
  const parts: Buffer[] = [Buffer.from(top.join(''))];
  let pos = 0;
  for (const [s, e, bytes] of edits) {
    parts.push(message.subarray(pos, s), bytes);
    pos = e;
  }
  parts.push(message.subarray(pos));
  return Buffer.concat(parts);
}

function safeName(name: string): string {
  // RFC 5322 §2.2: printable US-ASCII except colon.
  const n = name.replace(/[^\x21-\x39\x3b-\x7e]/g, '');
  if (!n) throw new Error(`invalid header field name ${JSON.stringify(name)}`);
  return n;
}

/** `Name: value\r\n`, the value cleaned, encoded when not ASCII, folded when long. */
function formatField(name: string, value: string): string {
  const clean = value.replace(/[\r\n]+/g, ' ').replace(/[\x00-\x08\x0b-\x1f\x7f]/g, '');
  return fold(`${name}: ${encodeText(clean)}`) + '\r\n';
}

/** Non-ASCII text as UTF-8 encoded words (RFC 2047 §5(1): unstructured text), ASCII as it is. */
function encodeText(text: string): string {
  if (isAscii(text)) return text;
  // Leading and trailing spaces stay outside, so they survive decoding.
  const m = /^(\s*)(.*?)(\s*)$/s.exec(text)!;
  return m[1] + encodeWord(m[2], 'Q', 52) + m[3];
}

/** Folds at spaces so lines stay within 78 characters where a space allows it (RFC 5322 §2.2.3). */
function fold(line: string): string {
  if (line.length <= MAX_LINE) return line;
  const out: string[] = [];
  let rest = line;
  while (rest.length > MAX_LINE) {
    let cut = rest.lastIndexOf(' ', MAX_LINE);
    // Never fold right after "Name:" (the value would start on an empty line) nor at position 0.
    if (cut <= rest.indexOf(':') + 1 && out.length === 0) cut = rest.indexOf(' ', rest.indexOf(':') + 2);
    else if (cut <= 0) cut = rest.indexOf(' ', 1);
    if (cut <= 0) break;
    out.push(rest.slice(0, cut));
    rest = rest.slice(cut); // the space starts the continuation line
  }
  out.push(rest);
  return out.join('\r\n');
}

/** The new Subject field; `raw` is the current field's value as in the message (after the colon, with its CRLF). */
function subjectField(subject: string, raw: Buffer): Buffer {
  const clean = subject.replace(/[\r\n]+/g, ' ');
  // The original value's bytes from its first non-blank one, line ending included (kept byte for byte).
  let from = 0;
  while (from < raw.length && (raw[from] === 0x20 || raw[from] === 0x09)) from++;
  const originalBytes = raw.subarray(from);
  const originalText = originalBytes.toString('utf8');
  const original = decodeWords(originalText).trim();
  if (original && clean.endsWith(original) && clean.length > original.length) {
    const prefix = clean.slice(0, clean.length - original.length);
    const startsWithWord = /^=\?[^?\s]+\?[BbQq]\?/.test(originalText);
    const keep = (head: string) => Buffer.concat([Buffer.from(`Subject: ${head}`), originalBytes]);
    if (isAscii(prefix)) {
      // Plain text before an encoded word needs a space between them (RFC 2047 §5(1)); the decoder keeps it.
      if (!startsWithWord || /\s$/.test(prefix)) return keep(prefix);
    } else if (/\s$/.test(prefix)) {
      // An encoded prefix is followed by a space: kept by the decoder before plain text, dropped (§6.2) before
      // another encoded word — so only in that case does the prefix's own trailing space go inside the word.
      return keep(`${encodeWord(startsWithWord ? prefix : prefix.replace(/\s+$/, ''), 'Q', 52)} `);
    }
  }
  return Buffer.from(formatField('Subject', clean));
}

function isAscii(s: string): boolean {
  return /^[\x00-\x7f]*$/.test(s);
}
