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

/** A hidden (always-Bcc) copy that could not be delivered: not in any DSN, so it is shown to the admin here. */
export interface BccFailure {
  id: string;
  /** The Bcc address (or the list member it expanded to). */
  address: string;
  /** The recipient it was a copy of. */
  copyOf: string | null;
  lastResult: string | null;
  at: string;
}

const KEEP = 100;

export class Activity {
  readonly counters = { finished: 0, deleted: 0, recipientsDelivered: 0, recipientsFailed: 0, deferredAttempts: 0, dsnSent: 0, bccFailed: 0 };
  private readonly recent: RecentMessage[] = [];
  private readonly bccFailures: BccFailure[] = [];

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
      // The sender never hears of a Bcc copy (RFC 3461 §6.2 hides it from DSNs): without this the admin would not either.
      if (r.state === 'failed' && r.hidden) {
        this.counters.bccFailed++;
        this.bccFailures.unshift({ id: e.id, address: r.address, copyOf: r.parent ?? null, lastResult: r.lastResult ?? null, at: new Date().toISOString() });
        if (this.bccFailures.length > KEEP) this.bccFailures.length = KEEP;
      }
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

  /** Bcc copies that bounced, newest first. */
  recentBccFailures(limit = 20): BccFailure[] {
    return this.bccFailures.slice(0, limit);
  }

  stop(): void {
    this.scheduler.off('finished', this.onFinished);
    this.scheduler.off('attempted', this.onAttempted);
  }
}
