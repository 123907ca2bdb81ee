/**
 * Delays the answer to a failed login, growing per client address (Dovecot's auth_failure_delay, which doubles
 * per failure): the first failure waits `baseMs` (2 s by default), the next ones twice as long each, up to
 * `maxMs`. A success or `forgetAfterMs` without failures resets the address.
 */
export interface FailureDelayOptions {
  baseMs: number;
  maxMs: number;
  forgetAfterMs?: number;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
  /** Bound on remembered addresses; the oldest are forgotten first. */
  maxAddresses?: number;
}

export class FailureDelay {
  private readonly failures = new Map<string, { count: number; last: number }>();
  private readonly now: () => number;
  private readonly sleepFn: (ms: number) => Promise<void>;

  constructor(private readonly opts: FailureDelayOptions) {
    this.now = opts.now ?? Date.now;
    this.sleepFn = opts.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
  }

  /** The delay the next failure from this address will get. */
  delayFor(client: string): number {
    if (this.opts.baseMs <= 0) return 0;
    const rec = this.current(client);
    const count = (rec?.count ?? 0) + 1;
    return Math.min(this.opts.baseMs * 2 ** Math.min(count - 1, 20), Math.max(this.opts.maxMs, this.opts.baseMs));
  }

  private current(client: string) {
    const rec = this.failures.get(client);
    if (rec && this.now() - rec.last > (this.opts.forgetAfterMs ?? 5 * 60_000)) {
      this.failures.delete(client);
      return undefined;
    }
    return rec;
  }

  /** Records a failure and waits the delay it earned. */
  async fail(client: string): Promise<number> {
    const ms = this.delayFor(client);
    const count = (this.current(client)?.count ?? 0) + 1;
    this.failures.delete(client); // re-insert: Map order is the age order used for the bound
    this.failures.set(client, { count, last: this.now() });
    const max = this.opts.maxAddresses ?? 100_000;
    while (this.failures.size > max) this.failures.delete(this.failures.keys().next().value!);
    if (ms > 0) await this.sleepFn(ms);
    return ms;
  }

  succeed(client: string): void {
    this.failures.delete(client);
  }
}
