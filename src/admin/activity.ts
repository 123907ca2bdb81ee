/**
 * What the queue did since the server started, for the dashboard ("recent deliveries") and /metrics: kept in
 * memory from the scheduler's events, so it costs nothing per message beyond a counter and a ring buffer.
 */
import type { AttemptEvent, FinishedEvent, Scheduler } from '../queue/scheduler.js';

export interface RecentMessage {
  id: string;
  from: string;
  finishedAt: string;
  /** done: every recipient reached a final state; deleted: removed from the queue by an admin. */
  outcome: 'done' | 'deleted';
  recipients: { address: string; state: string; lastResult: string | null }[];
  dsnId: string | null;
}

const KEEP = 100;

export class Activity {
  readonly counters = { finished: 0, deleted: 0, recipientsDelivered: 0, recipientsFailed: 0, deferredAttempts: 0, dsnSent: 0 };
  private readonly recent: RecentMessage[] = [];

  private readonly onFinished = (ev: FinishedEvent) => {
    if (ev.reason === 'vanished' || !ev.envelope) {
      this.counters.deleted++;
      this.push({ id: ev.id, from: '', finishedAt: new Date().toISOString(), outcome: 'deleted', recipients: [], dsnId: null });
      return;
    }
    const e = ev.envelope;
    this.counters.finished++;
    if (ev.dsnId) this.counters.dsnSent++;
    for (const r of e.recipients) {
      if (r.state === 'delivered') this.counters.recipientsDelivered++;
      else if (r.state === 'failed') this.counters.recipientsFailed++;
    }
    this.push({
      id: e.id,
      from: e.from,
      finishedAt: new Date().toISOString(),
      outcome: 'done',
      recipients: e.recipients.filter((r) => !r.hidden).map((r) => ({ address: r.address, state: r.state, lastResult: r.lastResult ?? null })),
      dsnId: ev.dsnId ?? null,
    });
  };

  private readonly onAttempted = (_ev: AttemptEvent) => {
    this.counters.deferredAttempts++;
  };

  constructor(private readonly scheduler: Scheduler) {
    scheduler.on('finished', this.onFinished);
    scheduler.on('attempted', this.onAttempted);
  }

  private push(m: RecentMessage): void {
    this.recent.unshift(m);
    if (this.recent.length > KEEP) this.recent.length = KEEP;
  }

  /** Newest first. */
  recentMessages(limit = 20): RecentMessage[] {
    return this.recent.slice(0, limit);
  }

  stop(): void {
    this.scheduler.off('finished', this.onFinished);
    this.scheduler.off('attempted', this.onAttempted);
  }
}
