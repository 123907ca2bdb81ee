/**
 * Send-limit benchmark (issue 13 §5): what the limits add to each accepted message — the in-memory check at MAIL
 * FROM and RCPT TO and the count after DATA — and the batched write of the counters to limits.db, side by side
 * with the floor every accepted message already pays: one fsync of a small file (DESIGN.md §6 "fsync is the budget").
 */
import { closeSync, fsyncSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../src/lib/logger.ts';
import { SendLimits } from '../../src/limits/send-limits.ts';
import { SqliteCounterStore } from '../../src/limits/store.ts';
import { openSettings } from '../../src/settings/store.ts';
import { measure, percentile, table, us } from './lib.ts';

export async function benchLimits(): Promise<string> {
  const dataDir = mkdtempSync(join(tmpdir(), 'postern-bench-limits-'));
  try {
    const settings = openSettings(dataDir);
    // Limits high enough never to refuse: the cost measured is that of a message that goes through.
    settings.set('smtp.sendLimit.messagesPerHour', 1_000_000_000);
    settings.set('smtp.sendLimit.recipientsPerHour', 1_000_000_000);
    settings.set('smtp.sendLimit.ipMessagesPerHour', 1_000_000_000);
    settings.set('smtp.sendLimit.ipRecipientsPerHour', 1_000_000_000);
    const store = SqliteCounterStore.open(dataDir);
    const limits = new SendLimits({ settings, log: silentLogger, store, flushMs: 60_000 });
    const users = 200;
    const perMessage = await measure(100_000, async (i) => {
      const s = { id: `s${i}`, login: `user${i % users}`, ip: `198.51.100.${i % 250}`, log: silentLogger };
      limits.checkMail(s);
      limits.checkRcpt(s);
      limits.checkRcpt(s);
      limits.accepted(s.id);
    });
    // One flush after a busy quarter second at 1,000 messages/s: 250 messages of 200 users from 250 addresses.
    // Only the flush is timed; the messages before it are not.
    const flushSamples: number[] = [];
    for (let i = 0; i < 200; i++) {
      for (let k = 0; k < 250; k++) {
        const s = { id: `f${i}-${k}`, login: `user${k % users}`, ip: `198.51.100.${k}`, log: silentLogger };
        limits.checkMail(s);
        limits.checkRcpt(s);
        limits.accepted(s.id);
      }
      const t0 = process.hrtime.bigint();
      limits.flush();
      flushSamples.push(Number(process.hrtime.bigint() - t0) / 1000);
    }
    flushSamples.sort((a, b) => a - b);
    const flush = { n: flushSamples.length, p50: percentile(flushSamples, 50), p99: percentile(flushSamples, 99) };
    const file = join(dataDir, 'fsync-probe');
    const fsync = await measure(300, async () => {
      const fd = openSync(file, 'w');
      writeSync(fd, Buffer.alloc(4096, 1));
      fsyncSync(fd);
      closeSync(fd);
    });
    limits.close();
    settings.close();
    return [
      'Send limits: cost per accepted message (MAIL FROM + 2 RCPT TO + count), in memory; the counter write batched',
      table([
        ['what', 'n', 'p50', 'p99', 'p50 ratio to one fsync'],
        ['fsync of a 4 KB file (every accepted message pays one or more)', String(fsync.n), us(fsync.p50), us(fsync.p99), '1.00'],
        ['limits per message (200 users, 250 addresses)', String(perMessage.n), us(perMessage.p50), us(perMessage.p99), (perMessage.p50 / fsync.p50).toFixed(4)],
        ['flush to limits.db after 250 messages (~450 rows)', String(flush.n), us(flush.p50), us(flush.p99), (flush.p50 / fsync.p50).toFixed(2)],
      ]),
    ].join('\n');
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
}
