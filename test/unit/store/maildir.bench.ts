/**
 * Deliveries per second of MaildirStore (every one fsynced: file + directory), 1 KiB messages.
 * Not a test (no timing assertions); run by hand:
 *
 *   [UV_THREADPOOL_SIZE=32] node --import tsx test/unit/store/maildir.bench.ts [COUNT] [DIR]
 *
 * DIR defaults to a temp dir under os.tmpdir(); point it at the data disk to measure that disk.
 * Belongs in test/bench/ once `npm run bench` collects per-component benchmarks.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MaildirStore } from '../../../src/store/maildir.ts';
import type { MailboxOwner } from '../../../src/store/types.ts';

const count = Number(process.argv[2] ?? 500);
const base = await mkdtemp(join(process.argv[3] ?? tmpdir(), 'postern-maildir-bench-'));
const store = new MaildirStore({ root: join(base, 'mail'), hostname: 'bench.example' });
const body = Buffer.alloc(1024 - 2, 'x');
const msg = Buffer.concat([body, Buffer.from('\r\n')]);
const prefix = 'Return-Path: <a@b.example>\r\nDelivered-To: u@corp.example\r\n';

async function run(label: string, concurrency: number, owner: (i: number) => MailboxOwner, quotaBytes = 0): Promise<void> {
  // Warm up: creates the Maildirs so that directory creation is not measured.
  await Promise.all(Array.from({ length: 20 }, (_, i) => store.deliver(owner(i), msg, { prefix, quotaBytes })));
  let next = 0;
  const start = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        const i = next++;
        await store.deliver(owner(i), msg, { prefix, quotaBytes });
      }
    }),
  );
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  console.log(`${label.padEnd(48)} ${String(Math.round(count / seconds)).padStart(6)} deliveries/s  (${count} in ${seconds.toFixed(2)} s)`);
}

// A fresh mailbox per scenario, so that each starts with an empty new/.
const one = (name: string): (() => MailboxOwner) => () => ({ kind: 'user', login: name });
const many = (name: string) => (i: number): MailboxOwner => ({ kind: 'user', login: `${name}${i % 20}` });
console.log(`UV_THREADPOOL_SIZE=${process.env.UV_THREADPOOL_SIZE ?? '4 (default)'}: fs calls, fsync included, run on that many threads`);
try {
  await run('sequential, one mailbox', 1, one('seq'));
  await run('sequential, one mailbox, with quota', 1, one('seqq'), 1 << 30);
  await run('20 concurrent, one mailbox', 20, one('conc'));
  await run('20 concurrent, one mailbox, with quota', 20, one('concq'), 1 << 30);
  await run('20 concurrent, 20 mailboxes', 20, many('many'));
} finally {
  await rm(base, { recursive: true, force: true });
}
