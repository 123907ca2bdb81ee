/**
 * Group commit for rows of the PostgreSQL state store (issue 16): callers arriving while a statement is in flight
 * wait together and are written by the next one statement — one round trip and one commit (one WAL flush) for all
 * of them, as the file spool shares one fsync of its directory among concurrent enqueues (DirSyncer,
 * src/queue/spool.ts).
 *
 * What a caller is promised: its promise resolves only after the statement that carried its item has returned,
 * and a statement outside a transaction block is committed when PostgreSQL answers it (autocommit), so nobody is
 * told "done" before its own row is durable. When the statement fails (PostgreSQL down, the connection killed
 * mid-flight) every caller of that batch is rejected with the same error: none is half-acknowledged. A statement
 * that commits and whose answer is then lost is the one case a caller is told "failed" for what is stored; the
 * callers handle it as before batching (the queue's row without a file is dropped by the scheduler).
 *
 * At most `maxBatch` items go into one statement and `inFlight` statements run at once (each on its own pooled
 * connection), so a burst neither builds one huge statement nor waits for one round trip at a time.
 */
export class RowBatcher<I, R> {
  private waiting: { item: I; resolve: (r: R) => void; reject: (err: unknown) => void }[] = [];
  private running = 0;
  /** When the last statement started (gapMs). */
  private lastStart = 0;
  /** Statements run, and items they carried: items / batches is the grouping ratio (bench, tests). */
  batches = 0;
  items = 0;

  constructor(
    /** Writes `items` in one statement; returns one result per item, in order. */
    private readonly write: (items: I[]) => Promise<R[]>,
    private readonly opts: {
      maxBatch?: number;
      inFlight?: number;
      /**
       * A statement starts no sooner than this after the one before it, carrying what came meanwhile: for writes no
       * client waits for (the queue's removal of a delivered message), fewer statements and commits for a little
       * latency. 0 (default): as soon as a connection is free.
       */
      gapMs?: number;
    } = {},
  ) {}

  /** Resolves with the item's result once the statement that carried it has been answered (committed). */
  add(item: I): Promise<R> {
    this.items++;
    return new Promise<R>((resolve, reject) => {
      this.waiting.push({ item, resolve, reject });
      if (this.running < (this.opts.inFlight ?? 1)) void this.run();
    });
  }

  private async run(): Promise<void> {
    this.running++;
    try {
      while (this.waiting.length) {
        const wait = this.lastStart + (this.opts.gapMs ?? 0) - Date.now();
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
        this.lastStart = Date.now();
        const batch = this.waiting.splice(0, this.opts.maxBatch ?? 500);
        this.batches++;
        let results: R[];
        try {
          results = await this.write(batch.map((w) => w.item));
          if (results.length !== batch.length) throw new Error(`batched write returned ${results.length} results for ${batch.length} items`);
        } catch (err) {
          for (const w of batch) w.reject(err);
          continue;
        }
        batch.forEach((w, i) => w.resolve(results[i]!));
      }
    } finally {
      this.running--;
    }
  }
}
