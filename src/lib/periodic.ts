/**
 * A job that runs at start and then every interval, one run at a time (a run asked for while one is going joins
 * it), and never rejects: its failure is turned into a result by `onError`. The junk retention sweep, the trace
 * retention sweep and the mailbox reconcile are such jobs. `stopped` lets a long run end between steps.
 */
/**
 * Lets one node of a cluster run a job per interval (src/cluster/run-once.ts). Structural here so that lib/ does not
 * import cluster/.
 */
export interface PeriodicGate {
  name: string;
  claim(name: string, intervalMs: number): Promise<boolean>;
  done(name: string): Promise<void>;
}

export class PeriodicJob<T> {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<T> | undefined;
  /** Set by stop(), cleared by start(). */
  stopped = false;

  constructor(
    private readonly job: () => Promise<T>,
    private readonly onError: (err: unknown) => T,
    private readonly intervalMs: number,
    /**
     * With a gate, a timer tick runs the job only when the gate gives it to this node (once cluster-wide). A tick
     * whose claim fails (the state store unreachable) is skipped, never run unclaimed: that could run it twice.
     * run() called directly (an admin's "now") is not gated.
     */
    private readonly gate?: PeriodicGate,
  ) {}

  /** Runs now (in the background) and then every interval; a second start() does nothing. */
  start(): void {
    this.stopped = false;
    if (this.timer) return;
    void this.tick();
    this.timer = setInterval(() => void this.tick(), this.intervalMs);
    this.timer.unref();
  }

  /** Stops the timer and waits for a run in progress. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.running?.catch(() => undefined);
  }

  private async tick(): Promise<void> {
    const gate = this.gate;
    if (!gate) {
      await this.run();
      return;
    }
    if (this.running || this.stopped) return;
    let mine = false;
    try {
      mine = await gate.claim(gate.name, this.intervalMs);
    } catch {
      return;
    }
    if (!mine) return;
    try {
      await this.run();
    } finally {
      await gate.done(gate.name).catch(() => undefined);
    }
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
