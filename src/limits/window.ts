/**
 * The counter behind the send limits: a sliding window of 60 one-minute buckets per key (a user or a client
 * address), each bucket holding the messages and recipients accepted in that minute.
 *
 * Why buckets and not a token bucket: the question an admin asks is "how much did this account send in the last
 * hour", and the buckets answer it as it is (the API shows it); the limit then reads the way it is written,
 * "500 messages per hour" = at most 500 in any 60 minutes, to the minute. A token bucket refills continuously, so
 * its state is not a count anyone can read or check against a log. The cost is bounded: 60 small slots per key that
 * sent in the last hour, a sum over 60 numbers per check, and one row per key and minute to persist.
 */

export const WINDOW_MINUTES = 60;

export interface Count {
  messages: number;
  recipients: number;
}

/** One key's persisted minute: what the store loads and saves. */
export interface BucketRow extends Count {
  key: string;
  /** Minutes since the epoch (Math.floor(ms / 60000)). */
  minute: number;
}

export const minuteOf = (ms: number): number => Math.floor(ms / 60_000);

class Slots {
  /** slot i holds minute `minutes[i]` (i = minute % 60); a slot whose minute is out of the window is empty. */
  readonly minutes = new Float64Array(WINDOW_MINUTES).fill(-Infinity);
  readonly messages = new Float64Array(WINDOW_MINUTES);
  readonly recipients = new Float64Array(WINDOW_MINUTES);
  /** The newest minute written: a key idle for a whole window can be forgotten. */
  last = -Infinity;
}

export class SlidingWindow {
  private readonly keys = new Map<string, Slots>();
  /** (key, minute) pairs changed since the last takeDirty(), for the store. */
  private dirty = new Map<string, Set<number>>();

  /** What `key` was accepted for in the 60 minutes up to and including minute `now`. */
  count(key: string, now: number): Count {
    const s = this.keys.get(key);
    if (!s || s.last <= now - WINDOW_MINUTES) return { messages: 0, recipients: 0 };
    let messages = 0;
    let recipients = 0;
    for (let i = 0; i < WINDOW_MINUTES; i++) {
      if (s.minutes[i] > now - WINDOW_MINUTES && s.minutes[i] <= now) {
        messages += s.messages[i];
        recipients += s.recipients[i];
      }
    }
    return { messages, recipients };
  }

  /** Adds to `key`'s bucket of minute `now`. */
  add(key: string, now: number, c: Count): void {
    let s = this.keys.get(key);
    if (!s) this.keys.set(key, (s = new Slots()));
    const i = now % WINDOW_MINUTES;
    if (s.minutes[i] !== now) {
      s.minutes[i] = now;
      s.messages[i] = 0;
      s.recipients[i] = 0;
    }
    s.messages[i] += c.messages;
    s.recipients[i] += c.recipients;
    if (now > s.last) s.last = now;
    let d = this.dirty.get(key);
    if (!d) this.dirty.set(key, (d = new Set()));
    d.add(now);
  }

  /** Puts back what the store kept (at start): rows older than the window are ignored. */
  load(rows: Iterable<BucketRow>, now: number): void {
    for (const r of rows) {
      if (r.minute <= now - WINDOW_MINUTES || r.minute > now) continue;
      let s = this.keys.get(r.key);
      if (!s) this.keys.set(r.key, (s = new Slots()));
      const i = r.minute % WINDOW_MINUTES;
      s.minutes[i] = r.minute;
      s.messages[i] = r.messages;
      s.recipients[i] = r.recipients;
      if (r.minute > s.last) s.last = r.minute;
    }
  }

  /** The buckets changed since the last call, with their whole values (an upsert of each is idempotent). */
  takeDirty(): BucketRow[] {
    const out: BucketRow[] = [];
    for (const [key, minutes] of this.dirty) {
      const s = this.keys.get(key);
      if (!s) continue;
      for (const minute of minutes) {
        const i = minute % WINDOW_MINUTES;
        if (s.minutes[i] === minute) out.push({ key, minute, messages: s.messages[i], recipients: s.recipients[i] });
      }
    }
    this.dirty = new Map();
    return out;
  }

  /** Rows that could not be saved go back to the dirty set, to be tried again. */
  markDirty(rows: BucketRow[]): void {
    for (const r of rows) {
      let d = this.dirty.get(r.key);
      if (!d) this.dirty.set(r.key, (d = new Set()));
      d.add(r.minute);
    }
  }

  /** Forgets keys with nothing in the window; returns how many were dropped. */
  prune(now: number): number {
    let n = 0;
    for (const [key, s] of this.keys) {
      if (s.last <= now - WINDOW_MINUTES) {
        this.keys.delete(key);
        n++;
      }
    }
    return n;
  }

  /** Every key that has something in the window. */
  *active(now: number): Generator<[string, Count]> {
    for (const key of this.keys.keys()) {
      const c = this.count(key, now);
      if (c.messages > 0 || c.recipients > 0) yield [key, c];
    }
  }

  /** Drops a key's buckets (an admin's reset); the store is told through the dirty set with zero rows. */
  clear(key: string): void {
    const s = this.keys.get(key);
    if (!s) return;
    const d = this.dirty.get(key) ?? new Set<number>();
    for (let i = 0; i < WINDOW_MINUTES; i++) {
      if (Number.isFinite(s.minutes[i])) {
        d.add(s.minutes[i]);
        s.messages[i] = 0;
        s.recipients[i] = 0;
      }
    }
    this.dirty.set(key, d);
  }

  get size(): number {
    return this.keys.size;
  }
}
