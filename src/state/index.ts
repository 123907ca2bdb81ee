/**
 * The state store (issue 16, DESIGN.md §8): where what every node must agree on lives. `sqlite` (the default) is
 * the embedded settings.db, trace.db … in dataDir, unchanged; `postgres` puts the runtime settings in a PostgreSQL
 * 15+ that every node uses (src/state/postgres/), settings.db keeping this node's copy of them.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { StateConfig } from '../config/schema.js';
import type { Logger } from '../lib/logger.js';
import type { Settings } from '../settings/store.js';
import { PgState, type PgHealth } from './postgres/pool.js';
import { PgSettingsSync } from './postgres/settings-sync.js';

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
  close(): Promise<void>;
}

export function makeNodeId(): string {
  return `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
}

export function openState(config: StateConfig, log: Logger, opts: { nodeId?: string; name?: string } = {}): StateStore {
  const nodeId = opts.nodeId ?? makeNodeId();
  if (config.type === 'sqlite') {
    return { type: 'sqlite', nodeId, pg: undefined, start: async () => {}, health: async () => null, close: async () => {} };
  }
  const pg = new PgState(config, log, opts.name ?? `postern ${nodeId}`);
  let sync: PgSettingsSync | undefined;
  return {
    type: 'postgres',
    nodeId,
    pg,
    async start(settings) {
      await pg.migrate();
      sync = new PgSettingsSync({ pg, settings, log, nodeId });
      await sync.start();
    },
    health: () => pg.ping(),
    async close() {
      await sync?.close();
      await pg.close();
    },
  };
}
