/**
 * Which trace store a process writes and searches (issue 16): `${dataDir}/trace.db` with the embedded default
 * (`state.type: sqlite`), the shared tables on PostgreSQL with `state.type: postgres` — one trace for the cluster,
 * searched the same way on every node (the admin API and `postern trace` do not know which).
 */
import type { StateConfig } from '../config/schema.js';
import type { Logger } from '../lib/logger.js';
import type { PgState } from '../state/postgres/pool.js';
import { PgTraceStore } from './pg-store.js';
import { openTraceStore, type TraceStore } from './store.js';

export type TraceBackend = TraceStore | PgTraceStore;

export function openTrace(config: { dataDir: string; state: StateConfig }, pg: PgState | undefined, opts: { log?: Logger; writer?: 'inline' | 'worker' } = {}): TraceBackend {
  if (config.state.type === 'postgres') {
    if (!pg) throw new Error('state postgres: the trace needs the state store pool');
    return new PgTraceStore(pg, { log: opts.log });
  }
  return openTraceStore(config.dataDir, opts);
}
