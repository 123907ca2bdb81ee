/**
 * Spam stage (seed: Email > Filter > Anti-spam; DESIGN.md §3): scores the message with spamd and decides with OUR
 * thresholds from the settings, not spamd's required_score:
 *   score ≥ filter.spam.denyThreshold → reject 554 5.7.1;
 *   score ≥ filter.spam.threshold     → mark as spam: X-Spam-Flag: YES (the seed's marker), X-Spam-Score,
 *                                       X-Spam-Status, and the Subject prefix when one is set;
 *   below                             → mark with X-Spam-Status: No and X-Spam-Score.
 * Skipped when filter.spam is off, for messages over filter.spam.maxScanSizeKB, for allow-listed senders
 * (ctx.tags.spamExempt, set by the lists stage) and when every recipient is allow-listed
 * (ctx.tags.spamExemptRecipients). spamd unreachable or too slow → the stage THROWS and the pipeline applies
 * filter.spam.onFailure.
 *
 * Tags: { spam: boolean, spamScore: number } — later stages and delivery (move to Junk) use these, not the
 * headers: a message may arrive with forged X-Spam-* fields.
 */
import type { SpamAssassinConfig } from '../config/schema.js';
import type { Logger } from '../lib/logger.js';
import type { SettingsReader } from './clamav.js';
import { decodeWords, headerFields } from './mime.js';
import { Spamc, type SpamCheckResult, type SpamcRequestOptions } from './spamc.js';
import { ACCEPT, type FilterContext, type FilterStage, type FilterVerdict } from './types.js';

export interface SpamAssassinStageOptions {
  config: SpamAssassinConfig;
  settings: SettingsReader;
  log: Logger;
  /** For tests: a client to use instead of one built from `config`. */
  client?: Pick<Spamc, 'check'>;
}

/** SpamAssassin prints scores with one decimal; "-0.0" is shown as "0.0". */
export function formatScore(n: number): string {
  const s = n.toFixed(1);
  return s === '-0.0' ? '0.0' : s;
}

/**
 * Header fields this stage sets. The SMTP data hook passes them to applyMarks' `remove` (src/filters/pipeline.ts)
 * so that a sender cannot pre-set them.
 */
export const SPAM_HEADER_FIELDS = ['X-Spam-Flag', 'X-Spam-Score', 'X-Spam-Status'];

/**
 * The first Subject of the header section, decoded (RFC 2047 words, folding removed) the way applyMarks reads it,
 * or null when there is none.
 */
export function readSubject(message: Buffer): string | null {
  const field = headerFields(message).find((f) => f.name.toLowerCase() === 'subject');
  if (!field) return null;
  return decodeWords(message.subarray(field.valueStart, field.end).toString('utf8')).trim();
}

/**
 * The new Subject: the prefix, as given, in front of the original (seed: "prepending the given string to the
 * Subject header"). Null when there is nothing to do: no prefix, or the Subject already starts with it (a message
 * scored twice). applyMarks then inserts only the prefix, keeping the original's encoded words as they were.
 */
export function prefixedSubject(original: string | null, prefix: string): string | null {
  if (!prefix.trim()) return null;
  const subject = original ?? '';
  if (subject.startsWith(prefix.trim())) return null;
  return subject ? prefix + subject : prefix.trim();
}

function lowerSet(v: unknown): Set<string> | null {
  if (v instanceof Set) return new Set([...v].map((x) => String(x).toLowerCase()));
  if (Array.isArray(v)) return new Set(v.map((x) => String(x).toLowerCase()));
  return null;
}

export function spamassassinStage(opts: SpamAssassinStageOptions): FilterStage {
  const client = opts.client ?? new Spamc(opts.config);
  const log = opts.log.child({ component: 'filter', stage: 'spamassassin' });
  return {
    name: 'spamassassin',
    phase: 'data',
    async check(ctx: FilterContext): Promise<FilterVerdict> {
      const s = opts.settings;
      if (!s.get('filter.spam')) return ACCEPT;
      const message = ctx.message;
      if (!message) return ACCEPT; // only the data phase has a message; this stage runs there
      const maxBytes = s.get('filter.spam.maxScanSizeKB') * 1024;
      if (message.length > maxBytes) {
        log.debug({ id: ctx.id, size: message.length, maxBytes }, 'not scored: larger than filter.spam.maxScanSizeKB');
        return ACCEPT;
      }
      if (ctx.tags.spamExempt) {
        log.debug({ id: ctx.id, from: ctx.from }, 'not scored: sender allow-listed');
        return ACCEPT;
      }
      const exemptRcpts = lowerSet(ctx.tags.spamExemptRecipients);
      if (exemptRcpts && ctx.recipients.length > 0 && ctx.recipients.every((r) => exemptRcpts.has(r.toLowerCase()))) {
        log.debug({ id: ctx.id }, 'not scored: every recipient allow-listed');
        return ACCEPT;
      }

      const t0 = Date.now();
      const result: SpamCheckResult = await client.check(message); // throws → filter.spam.onFailure
      const ms = Date.now() - t0;
      const threshold = s.get('filter.spam.threshold');
      const deny = s.get('filter.spam.denyThreshold');
      const score = result.score;
      const shown = formatScore(score);
      const tests = result.symbols.length ? result.symbols.join(',') : 'none';
      const fields = { id: ctx.id, client: ctx.client.address, from: ctx.from, score, threshold, deny, tests, ms };

      if (score >= deny) {
        log.info(fields, `spam refused (score ${shown})`);
        return {
          action: 'reject',
          reply: { code: 554, enhanced: '5.7.1', text: `Message refused as spam (score ${shown})` },
          tags: { spam: true, spamScore: score },
        };
      }
      const isSpam = score >= threshold;
      const status = `${isSpam ? 'Yes' : 'No'}, score=${shown} required=${formatScore(threshold)} tests=${tests}`;
      const headers: [string, string][] = [];
      if (isSpam) headers.push(['X-Spam-Flag', 'YES']);
      headers.push(['X-Spam-Score', shown]);
      // One line; applyMarks folds long values (the tests= list of a spammy message is long).
      headers.push(['X-Spam-Status', status]);
      const verdict: FilterVerdict = { action: 'mark', headers, tags: { spam: isSpam, spamScore: score } };
      if (isSpam) {
        const subject = prefixedSubject(readSubject(message), s.get('filter.spam.subjectPrefix'));
        if (subject !== null) verdict.subject = subject;
        log.info(fields, `spam marked (score ${shown})`);
      } else {
        log.debug(fields, `not spam (score ${shown})`);
      }
      return verdict;
    },
  };
}

export interface SpamLearnerOptions {
  config: SpamAssassinConfig;
  log: Logger;
  /** When given, messages over filter.spam.maxScanSizeKB are not learned (as spamc skips them). */
  settings?: SettingsReader;
  /** For tests: a client to use instead of one built from `config`. */
  client?: Pick<Spamc, 'learn'>;
}

/**
 * Bayes training (seed: "trained with any IMAP client by simply moving a message in and out of the junkmail folder"):
 * the IMAP side calls learn(message, 'spam') when a message is moved into Junk, learn(message, 'ham') when out.
 * Throws when spamd cannot be reached (the caller logs it; the move itself must not fail).
 */
export class SpamLearner {
  private readonly client: Pick<Spamc, 'learn'>;
  private readonly log: Logger;

  constructor(private readonly opts: SpamLearnerOptions) {
    this.client = opts.client ?? new Spamc(opts.config);
    this.log = opts.log.child({ component: 'filter', stage: 'spamassassin' });
  }

  /** True when spamd learned the message, false when it already knew it as that class (or it was too large). */
  async learn(message: Buffer, kind: 'spam' | 'ham', opts: SpamcRequestOptions & { by?: string } = {}): Promise<boolean> {
    const max = this.opts.settings ? this.opts.settings.get('filter.spam.maxScanSizeKB') * 1024 : Infinity;
    if (message.length > max) {
      this.log.info({ kind, size: message.length, by: opts.by }, 'not learned: larger than filter.spam.maxScanSizeKB');
      return false;
    }
    const learned = await this.client.learn(message, kind, opts.user === undefined ? {} : { user: opts.user });
    this.log.info({ kind, learned, by: opts.by, size: message.length }, learned ? `learned as ${kind}` : `already known as ${kind}`);
    return learned;
  }
}
