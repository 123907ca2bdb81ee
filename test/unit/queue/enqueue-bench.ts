/**
 * Enqueue throughput of the spool (not a test; `npm test` runs *.test.ts only). Run:
 *
 *   node --import tsx test/unit/queue/enqueue-bench.ts [MESSAGES] [CONCURRENCY...]
 *
 * 4 KiB messages, one recipient, into a spool in a temp dir on the disk of os.tmpdir() (set TMPDIR to measure
 * another disk). Prints messages/s, latency of enqueue (the time an SMTP client waits for its 250) and how many
 * directory fsyncs group commit needed. Every enqueue is fully durable (two file fsyncs + a shared dir fsync).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Spool } from '../../../src/queue/spool.ts';

const total = Number(process.argv[2] ?? 2000);
const levels = process.argv.slice(3).map(Number);
const body = Buffer.from(('x'.repeat(76) + '\r\n').repeat(Math.ceil(4096 / 78))).subarray(0, 4096);

async function run(concurrency: number): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'postern-bench-'));
  try {
    const spool = new Spool(dir);
    await spool.init();
    const latencies: number[] = [];
    let next = 0;
    const started = performance.now();
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < total) {
          const i = next++;
          const t0 = performance.now();
          await spool.enqueue(body, {
            from: 'alice@corp.example',
            recipients: [{ address: `user${i}@corp.example`, state: 'pending', attempts: 0, origin: 'rcpt' }],
            client: { address: '192.0.2.1', listener: 'smtp' },
          });
          latencies.push(performance.now() - t0);
        }
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    latencies.sort((a, b) => a - b);
    const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))].toFixed(1);
    const { dirSyncs } = spool.stats;
    console.log(
      `concurrency ${String(concurrency).padStart(3)}: ${String(Math.round(total / seconds)).padStart(5)} msg/s` +
        `  latency p50 ${pct(0.5)} ms p99 ${pct(0.99)} ms  dir fsyncs ${dirSyncs} for ${total} messages` +
        ` (${(total / dirSyncs).toFixed(1)} per fsync)`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

console.log(`${total} messages of ${body.length} bytes, UV_THREADPOOL_SIZE=${process.env.UV_THREADPOOL_SIZE ?? '4 (default)'}, ${tmpdir()}`);
for (const c of levels.length ? levels : [1, 50]) await run(c);
