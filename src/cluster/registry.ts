/**
 * Nodes that know each other (issue 16, DESIGN.md §8 `cluster/`): each node registers itself in the state store (id,
 * address, version) and beats every `heartbeatMs`; `list()` is what `/readyz` and `postern cluster status` show.
 * A node that stops cleanly removes its row; one that was killed stays, shown as gone once its heartbeat is older
 * than three beats, and is removed after an hour.
 */
import type { Logger } from '../lib/logger.js';
import type { PgState } from '../state/postgres/pool.js';

export interface ClusterNode {
  id: string;
  address: string;
  version: string;
  startedAt: string;
  heartbeatAt: string;
  /** Heartbeat within three beats. */
  alive: boolean;
}

export interface NodeRegistryOptions {
  pg: PgState;
  log: Logger;
  id: string;
  address: string;
  version: string;
  heartbeatMs?: number;
}

export class NodeRegistry {
  private timer: NodeJS.Timeout | undefined;
  private readonly heartbeatMs: number;
  private readonly startedAt = new Date();

  constructor(private readonly opts: NodeRegistryOptions) {
    this.heartbeatMs = opts.heartbeatMs ?? 5000;
  }

  get id(): string {
    return this.opts.id;
  }

  /** Registers (the first beat) and keeps beating; a failed beat is retried at the next one (health says why). */
  async start(): Promise<void> {
    await this.beat();
    this.timer = setInterval(() => {
      this.beat().catch((err: unknown) => this.opts.log.warn({ component: 'cluster', err: (err as Error).message }, 'heartbeat failed'));
    }, this.heartbeatMs);
    this.timer.unref();
  }

  async beat(): Promise<void> {
    const { pg, id, address, version } = this.opts;
    await pg.query(
      `INSERT INTO cluster_nodes (id, address, version, started_at, heartbeat_at) VALUES ($1, $2, $3, $4, now())
       ON CONFLICT (id) DO UPDATE SET address = excluded.address, version = excluded.version, heartbeat_at = now()`,
      [id, address, version, this.startedAt],
    );
    await pg.query("DELETE FROM cluster_nodes WHERE heartbeat_at < now() - interval '1 hour'");
  }

  /** Every registered node, this one first, then by id. Throws TempFailure when PostgreSQL cannot answer. */
  async list(): Promise<ClusterNode[]> {
    return listNodes(this.opts.pg, this.heartbeatMs, this.opts.id);
  }

  /** Stops beating and removes this node's row (best effort: a node that cannot reach PostgreSQL just goes stale). */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.opts.pg.query('DELETE FROM cluster_nodes WHERE id = $1', [this.opts.id]).catch(() => undefined);
  }
}

/** The nodes in the store (also for the CLI, which is not a node). */
export async function listNodes(pg: PgState, heartbeatMs = 5000, self?: string): Promise<ClusterNode[]> {
  const r = await pg.query<{ id: string; address: string; version: string; started_at: Date; heartbeat_at: Date; alive: boolean }>(
    `SELECT id, address, version, started_at, heartbeat_at, heartbeat_at > now() - make_interval(secs => $1) AS alive
       FROM cluster_nodes ORDER BY id`,
    [(3 * heartbeatMs) / 1000],
  );
  const nodes = r.rows.map((n) => ({
    id: n.id,
    address: n.address,
    version: n.version,
    startedAt: n.started_at.toISOString(),
    heartbeatAt: n.heartbeat_at.toISOString(),
    alive: n.alive,
  }));
  return self ? [...nodes.filter((n) => n.id === self), ...nodes.filter((n) => n.id !== self)] : nodes;
}
