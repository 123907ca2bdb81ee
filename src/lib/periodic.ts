/**
 * A job that runs at start and then every interval, one run at a time (a run asked for while one is going joins
 * it), and never rejects: its failure is turned into a result by `onError`. The junk retention sweep, the trace
 * retention sweep and the mailbox reconcile are such jobs. `stopped` lets a long run end between steps.
 */
export class PeriodicJob<T> {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<T> | undefined;
  /** Set by stop(), cleared by start(). */
  stopped = false;

  constructor(
    private readonly job: () => Promise<T>,
    private readonly onError: (err: unknown) => T,
    private readonly intervalMs: number,
  ) {}

  /** Runs now (in the background) and then every interval; a second start() does nothing. */
  start(): void {
    this.stopped = false;
    if (this.timer) return;
    void this.run();
    this.timer = setInterval(() => void this.run(), this.intervalMs);
    this.timer.unref();
  }

  /** Stops the timer and waits for a run in progress. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.running?.catch(() => undefined);
  }

  /** One run now, or the one in progress. Never rejects. */
  run(): Promise<T> {
    this.running ??= this.job()
      .catch(this.onError)
      .finally(() => {
        this.running = undefined;
      });
    return this.running;
  }
}
