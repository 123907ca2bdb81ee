/**
 * Message trace benchmark (issue 13 item 6: `postern trace` and GET /api/trace answer in under 100 ms over
 * 1,000,000 events). Fills a trace store with POSTERN_BENCH_TRACE_EVENTS events (default 1,000,000: 125,000
 * messages of 8 events, 2,000 senders, 20,000 recipient addresses, spread over 30 days) through record() — the path
 * the server takes — then times each kind of query with keys drawn at random. The goal is printed next to each
 * p99; nothing is asserted (timings belong here, not in tests).
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openTraceStore } from '../../src/trace/store.ts';
import type { TraceEvent, TraceQuery } from '../../src/trace/types.ts';
import { envNumber, measure, table, us } from './lib.ts';

const GOAL_MS = 100;

/** A small deterministic generator (mulberry32), so every run fills the same store. */
function rng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

/** A well-formed queue id (16 Crockford base32 characters) per message number. */
function queueId(i: number): string {
  let s = '';
  for (let n = i, k = 0; k < 15; k++, n = Math.floor(n / 32)) s = ALPHABET[n % 32] + s;
  return `B${s}`;
}

export async function benchTrace(): Promise<string> {
  const env = envNumber('TRACE');
  const total = env('EVENTS', 1_000_000);
  const queries = env('QUERIES', 200);
  const perMessage = 8;
  const messages = Math.ceil(total / perMessage);
  const senders = 2000;
  const addresses = 20_000;
  const dataDir = mkdtempSync(join(tmpdir(), 'postern-bench-trace-'));
  const store = openTraceStore(dataDir);
  try {
    const random = rng(13);
    const now = Date.now();
    const span = 30 * 86_400_000;
    const sender = (i: number) => `user${i % senders}@example.com`;
    const rcpt = (i: number) => `rcpt${Math.floor(random() * addresses)}@remote.example`;
    const t0 = performance.now();
    let recorded = 0;
    const meta: { id: string; from: string; to: string; messageId: string; at: number }[] = [];
    for (let m = 0; m < messages && recorded < total; m++) {
      const id = queueId(m);
      const at = now - span + Math.floor((m / messages) * span);
      const from = sender(Math.floor(random() * senders));
      const to = rcpt(m);
      const messageId = `${id.toLowerCase()}.${m}@example.com`;
      if (m % 97 === 0) meta.push({ id, from, to, messageId, at });
      const events: TraceEvent[] = [
        { queueId: id, type: 'received', at, from, recipients: [to], messageId, detail: { listener: 'submission', client: '192.0.2.7', user: from.split('@')[0], size: 4321 } },
        { queueId: id, type: 'filter', at: at + 1, detail: { stage: 'attachments', action: 'accept' } },
        { queueId: id, type: 'filter', at: at + 2, detail: { stage: 'clamav', action: 'accept' } },
        { queueId: id, type: 'filter', at: at + 3, detail: { stage: 'spamassassin', action: 'mark', tags: { spam: false, spamScore: 1.2 } } },
        { queueId: id, type: 'queued', at: at + 4, from, recipients: [to], detail: { size: 4500, listener: 'submission' } },
        { queueId: id, type: 'attempt', at: at + 50, detail: { host: 'mx.remote.example[198.51.100.1]:25', tls: 'TLSv1.3', result: 'sent', replies: [{ to, reply: '250 2.0.0 Ok: queued' }] } },
        { queueId: id, type: 'relayed', at: at + 51, rcpt: to, detail: { host: 'mx.remote.example', reply: '250 2.0.0 Ok: queued' } },
        { queueId: id, type: 'completed', at: at + 52, detail: { delivered: 1, failed: 0 } },
      ];
      for (const e of events.slice(0, Math.min(perMessage, total - recorded))) store.record(e);
      recorded += Math.min(perMessage, total - recorded);
      // The server flushes at every turn of the event loop; a bench loop has none, so it flushes every 100 messages.
      if (m % 100 === 99) store.flush();
    }
    store.flush();
    const fillMs = performance.now() - t0;
    const counts = store.count();
    const pick = (i: number) => meta[(i * 7919) % meta.length];
    const lastDay = now - 86_400_000;
    const cases: [string, (i: number) => TraceQuery][] = [
      ['--id (queue id)', (i) => ({ queueId: pick(i).id })],
      ['--message-id', (i) => ({ messageId: `<${pick(i).messageId}>` })],
      ['--from (a sender, ~60 messages)', (i) => ({ from: pick(i).from })],
      ['--to (a recipient, ~6 messages)', (i) => ({ to: pick(i).to })],
      ['--since 1d (newest 50)', () => ({ since: lastDay })],
      ['--from --since 1d', (i) => ({ from: pick(i).from, since: lastDay })],
      ['--to --since 1d', (i) => ({ to: pick(i).to, since: lastDay })],
      ['--since 30d --until 29d (oldest day, 50)', () => ({ since: now - span, until: now - span + 86_400_000 })],
      ['--from --limit 1000', (i) => ({ from: pick(i).from, limit: 1000 })],
      // The worst case: nothing has an event that recent, so the arrival index is walked to its end.
      ['--since now (nothing matches)', () => ({ since: now + 1 })],
    ];
    const rows: string[][] = [['query', 'n', 'p50', 'p99', `p99 within ${GOAL_MS} ms`]];
    for (const [name, q] of cases) {
      const s = await measure(queries, async (i) => store.query(q(i)), 20);
      rows.push([name, String(s.n), us(s.p50), us(s.p99), s.p99 / 1000 < GOAL_MS ? 'yes' : 'NO']);
    }
    const size = statSync(store.file).size;
    const sweepT0 = performance.now();
    const swept = await store.deleteBefore(now - span + 86_400_000);
    const sweepMs = performance.now() - sweepT0;
    return [
      `Message trace: ${counts.events.toLocaleString('en')} events of ${counts.messages.toLocaleString('en')} messages in ${(size / 1024 / 1024).toFixed(0)} MiB (SQLite WAL, synchronous=NORMAL)`,
      `fill through record() + flush every 100 messages: ${(fillMs / 1000).toFixed(1)} s (${Math.round(counts.events / (fillMs / 1000)).toLocaleString('en')} events/s)`,
      table(rows),
      `retention sweep of the oldest day: ${swept.messages.toLocaleString('en')} messages, ${swept.events.toLocaleString('en')} events in ${(sweepMs / 1000).toFixed(2)} s`,
    ].join('\n');
  } finally {
    store.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}
