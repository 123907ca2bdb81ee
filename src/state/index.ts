/**
 * The state store (issue 16, DESIGN.md §8): where what every node must agree on lives. `sqlite` (the default) is
 * the embedded settings.db, trace.db … in dataDir, unchanged; `postgres` puts the runtime settings in a PostgreSQL
 * 15+ that every node uses (src/state/postgres/), settings.db keeping this node's copy of them.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { StateConfig } from '../config/schema.js';
import type { Logger } from '../lib/logger.js';
import type { Settings } from '../settings/store.js';
import { PgState, type PgHealth } from './postgres/pool.js';
import { PgSettingsSync } from './postgres/settings-sync.js';
import { listNodes, NodeRegistry, type ClusterNode } from '../cluster/registry.js';
import { RunOnce, type JobGate } from '../cluster/run-once.js';
import { setQueueIdNode } from '../queue/id.js';
import { Spool, type SpoolOptions } from '../queue/spool.js';
import { PgSpool } from './postgres/queue.js';

export { PgState, toTempFailure, pgCode, type PgHealth } from './postgres/pool.js';
export { PgSettingsSync } from './postgres/settings-sync.js';

export interface StateStore {
  readonly type: StateConfig['type'];
  /** This process's node id: host name, pid and a random part (unique across restarts). */
  readonly nodeId: string;
  /** The pool, with state postgres. */
  readonly pg: PgState | undefined;
  /** Connects, migrates and makes `settings` follow the shared store. Throws TempFailure when it cannot. */
  start(settings: Settings): Promise<void>;
  /** For /readyz: null with sqlite; PostgreSQL's reachability (asked now) with postgres. */
  health(): Promise<PgHealth | null>;
  /** The registered nodes (postgres; [] with sqlite). Throws TempFailure when PostgreSQL cannot answer. */
  nodes(): Promise<ClusterNode[]>;
  /**
   * Once-per-cluster scheduling for periodic jobs (postgres; undefined with sqlite). Given to the junk retention
   * sweep (the Maildir is shared), the trace retention and the mailbox reconcile (the registry is the cluster's:
   * src/state/postgres/mailbox-registry.ts).
   */
  readonly gate: JobGate | undefined;
  close(): Promise<void>;
}

export function makeNodeId(): string {
  return `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
}

export interface OpenStateOptions {
  nodeId?: string;
  /** application_name of the connections. */
  name?: string;
  /** Registered as this node (the server does; the CLI, which is not a node, leaves it out). */
  node?: { address: string; version: string; heartbeatMs?: number };
}

export function openState(config: StateConfig, log: Logger, opts: OpenStateOptions = {}): StateStore {
  const nodeId = opts.nodeId ?? makeNodeId();
  if (config.type === 'sqlite') {
    return {
      type: 'sqlite',
      nodeId,
      pg: undefined,
      gate: undefined,
      start: async () => {},
      health: async () => null,
      nodes: async () => [],
      close: async () => {},
    };
  }
  const pg = new PgState(config, log, opts.name ?? `postern ${nodeId}`);
  let sync: PgSettingsSync | undefined;
  const registry = opts.node ? new NodeRegistry({ pg, log, id: nodeId, ...opts.node }) : undefined;
  return {
    type: 'postgres',
    nodeId,
    pg,
    gate: new RunOnce(pg, nodeId),
    async start(settings) {
      await pg.migrate();
      sync = new PgSettingsSync({ pg, settings, log, nodeId });
      await sync.start();
      await registry?.start();
    },
    health: () => pg.ping(),
    nodes: () => (registry ? registry.list() : listNodes(pg)),
    async close() {
      await registry?.stop();
      await sync?.close();
      await pg.close();
    },
  };
}

/**
 * Where this node keeps its copies of the shared folder index (state postgres, maildir-pg-index.ts): `state.cacheDir`,
 * or dataDir/index-cache. The IMAP worker processes of a node use the same directory as its main process.
 */
export function indexCacheDir(config: { dataDir: string; state: StateConfig }): string {
  return (config.state.type === 'postgres' && config.state.cacheDir) || join(config.dataDir, 'index-cache');
}

/**
 * The spool of `dataDir` on this state store: the file default with sqlite; with postgres the queue whose metadata
 * is in PostgreSQL (src/state/postgres/queue.ts), which several nodes share, and whose ids carry this node's tag.
 * The CLI passes its own (not registered) state: it lists, flushes and deletes the whole cluster's queue.
 */
export function openSpool(dataDir: string, queue: { leaseSeconds: number }, state: StateStore, options: SpoolOptions = {}): Spool {
  if (state.type !== 'postgres' || !state.pg) return new Spool(dataDir, options);
  setQueueIdNode(state.nodeId);
  return new PgSpool(dataDir, { ...options, pg: state.pg, nodeId: state.nodeId, leaseSeconds: queue.leaseSeconds });
}
