/**
 * Scheduled work that runs once cluster-wide (issue 16): the retention sweeps, the trace retention and the mailbox
 * reconcile run on every node's timer (src/lib/periodic.ts), and each tick first asks `claim(name, intervalMs)`.
 * The claim is one statement on the job's row in cluster_jobs: it succeeds only when no node ran the job within
 * the interval and no node holds its lease, so of two nodes ticking at once exactly one runs it, and a node ticking
 * a little later in the same interval does not run it again. `done()` ends the lease; a node killed mid-run leaves
 * it to expire (`leaseMs`), after which the next interval's tick elsewhere runs the job.
 *
 * Why a row rather than pg_try_advisory_lock: an advisory lock says "running now", not "ran 10 seconds ago on the
 * other node", and a session lock would tie the job to one pooled connection for the length of the run.
 */
import type { PgState } from '../state/postgres/pool.js';

export interface JobGate {
  /** True when this node should run `name` now; false when another node has it or ran it within the interval. */
  claim(name: string, intervalMs: number): Promise<boolean>;
  /** The run of `name` this node claimed is over. */
  done(name: string): Promise<void>;
}

export class RunOnce implements JobGate {
  constructor(
    private readonly pg: PgState,
    private readonly nodeId: string,
    private readonly leaseMs = 15 * 60_000,
  ) {}

  async claim(name: string, intervalMs: number): Promise<boolean> {
    // A tenth of the interval of slack: timers of two nodes drift, and a run that started 59.9 s after the other
    // node's run of a one-minute job is the next interval's, not a duplicate.
    const minGapS = (intervalMs * 0.9) / 1000;
    const r = await this.pg.query(
      `INSERT INTO cluster_jobs (name, holder, lease_until, last_run_at)
            VALUES ($1, $2, now() + make_interval(secs => $3), now())
       ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, lease_until = excluded.lease_until, last_run_at = now()
        WHERE (cluster_jobs.holder IS NULL OR cluster_jobs.lease_until < now())
          AND cluster_jobs.last_run_at < now() - make_interval(secs => $4)
       RETURNING name`,
      [name, this.nodeId, this.leaseMs / 1000, minGapS],
    );
    return (r.rowCount ?? 0) > 0;
  }

  async done(name: string): Promise<void> {
    await this.pg.query('UPDATE cluster_jobs SET holder = NULL WHERE name = $1 AND holder = $2', [name, this.nodeId]);
  }
}
