/** Message trace (DESIGN.md §8): the store, its retention and the types the core components record with. */
export { TraceStore, openTraceStore, normalizeMessageId, TRACE_DB_FILE } from './store.js';
export { TraceRetention } from './retention.js';
export { PgTraceStore } from './pg-store.js';
export { openTrace, type TraceBackend } from './open.js';
export { parseTraceTime, TraceTimeError } from './time.js';
export * from './types.js';
