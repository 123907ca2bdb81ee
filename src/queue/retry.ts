/**
 * The retry schedule (Postfix's minimal_backoff_time / maximal_backoff_time): the wait after a temporary failure
 * starts at retryMinSeconds and doubles with each attempt, up to retryMaxSeconds. The queue lifetime, which ends
 * the retries, is a runtime setting (queue.lifetimeHours) read by the scheduler at each decision.
 */
import type { Config } from '../config/schema.js';

/** What the scheduler reads of `queue` (leaseSeconds is the PostgreSQL spool's, src/state/postgres/queue.ts). */
export type QueueConfig = Omit<Config['queue'], 'leaseSeconds'>;

/** Milliseconds to wait after the `attempts`-th attempt (1 = the first) left recipients pending. */
export function retryDelayMs(attempts: number, cfg: Pick<QueueConfig, 'retryMinSeconds' | 'retryMaxSeconds'>): number {
  const min = cfg.retryMinSeconds * 1000;
  const max = Math.max(cfg.retryMaxSeconds * 1000, min);
  // 2^60 is past any cap; the clamp keeps a huge attempt count from overflowing to Infinity × 0 = NaN.
  const exp = Math.min(Math.max(attempts, 1) - 1, 60);
  return Math.min(max, min * 2 ** exp);
}
