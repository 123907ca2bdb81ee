/**
 * Trace retention: the paths of messages whose last event is older than `trace.retentionDays` (default 30, 0 =
 * keep forever) are deleted, at start and then every hour, like the Junk retention (src/store/retention.ts).
 * The setting is read at every sweep, so a change applies at the next one.
 */
import type { Logger } from '../lib/logger.js';
import { PeriodicJob, type PeriodicGate } from '../lib/periodic.js';
import type { TraceStore } from './store.js';

const DAY_MS = 24 * 60 * 60 * 1000;
export const DEFAULT_TRACE_SWEEP_INTERVAL_MS = 60 * 60 * 1000;

export interface TraceRetentionOptions {
  store: Pick<TraceStore, 'deleteBefore'>;
  settings: { get(key: 'trace.retentionDays'): number };
  log: Logger;
  intervalMs?: number;
  now?: () => number;
  /** state postgres: the trace is shared, so one node per interval sweeps it (src/cluster/run-once.ts). */
  gate?: PeriodicGate;
}

export class TraceRetention {
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly job: PeriodicJob<{ messages: number; events: number }>;

  constructor(private readonly opts: TraceRetentionOptions) {
    this.log = opts.log.child({ component: 'trace' });
    this.now = opts.now ?? Date.now;
    this.job = new PeriodicJob(
      () => this.sweepOnce(),
      (err) => {
        this.log.warn({ err }, 'trace retention: sweep failed');
        return { messages: 0, events: 0 };
      },
      opts.intervalMs ?? DEFAULT_TRACE_SWEEP_INTERVAL_MS,
      opts.gate,
    );
  }

  start(): void {
    this.job.start();
  }

  stop(): Promise<void> {
    return this.job.stop();
  }

  /** One sweep; one at a time (a sweep already running is joined). Never rejects. */
  sweep(): Promise<{ messages: number; events: number }> {
    return this.job.run();
  }

  private async sweepOnce(): Promise<{ messages: number; events: number }> {
    const days = this.opts.settings.get('trace.retentionDays');
    if (!(days > 0)) return { messages: 0, events: 0 };
    const before = this.now() - days * DAY_MS;
    const removed = await this.opts.store.deleteBefore(before, undefined, () => this.job.stopped);
    if (removed.messages) {
      this.log.info({ ...removed, retentionDays: days, before: new Date(before).toISOString() }, 'trace retention: old message paths deleted');
    }
    return removed;
  }
}
