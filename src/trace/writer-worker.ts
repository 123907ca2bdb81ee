/**
 * The trace's writer thread (TraceStore with `writer: 'worker'`): owns a connection to trace.db and writes the
 * batches the server's event loop posts, one transaction each, so that neither the inserts nor SQLite's WAL
 * checkpoints (which fsync trace.db) run on the loop that serves SMTP sessions (issue 11). It tells the poster
 * how far it got through a shared counter (TraceStore.drain waits on it before a query reads).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { TraceStore } from './store.js';
import type { TraceEvent } from './types.js';

export interface WriterData {
  file: string;
  timeout: number;
  /** Int32Array over a SharedArrayBuffer: [0] last batch sequence written, [1] events written, [2] dropped, [3] batches. */
  counters: SharedArrayBuffer;
}

export type WriterMessage = { seq: number; events: TraceEvent[] } | { close: true };

const data = workerData as WriterData;
const counters = new Int32Array(data.counters);
const port = parentPort!;
let store: TraceStore | undefined;
try {
  store = new TraceStore(data.file, { timeout: data.timeout, writer: 'inline' });
} catch (err) {
  port.postMessage({ warn: `trace writer cannot open ${data.file}: ${(err as Error).message}` });
}

port.on('message', (m: WriterMessage) => {
  if ('close' in m) {
    store?.close();
    port.close();
    return;
  }
  const err = store ? store.writeNow(m.events) : new Error('the trace database is not open');
  if (err) {
    Atomics.add(counters, 2, m.events.length);
    port.postMessage({ warn: err.message, events: m.events.length });
  } else {
    Atomics.add(counters, 1, m.events.length);
    Atomics.add(counters, 3, 1);
  }
  Atomics.store(counters, 0, m.seq);
  Atomics.notify(counters, 0);
});
