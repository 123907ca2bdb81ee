/**
 * Filter benchmark (issue: content filters): the data-phase pipeline (attachments, clamav, spamassassin,
 * mail-auth) on a typical message, beside the time clamd and spamd themselves take for the same message through a
 * bare client. The difference is what postern adds (MIME walk, file-type detection, header marks, logging).
 */
import { rmSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import MailComposer from 'nodemailer/lib/mail-composer/index.js';
import { clamavSchema, spamassassinSchema } from '../../src/config/schema.ts';
import { ClamdScanner } from '../../src/filters/clamav.ts';
import { buildPipeline } from '../../src/filters/index.ts';
import { Spamc } from '../../src/filters/spamc.ts';
import { silentLogger } from '../../src/lib/logger.ts';
import { openSettings } from '../../src/settings/store.ts';
import { startClamd } from '../harness/clamd.ts';
import { startSpamd } from '../harness/spamd.ts';
import { percentile, table, us } from './lib.ts';

async function typicalMessage(): Promise<Buffer> {
  const pdf = Buffer.from('%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n' + 'x'.repeat(20_000));
  const text = Array.from({ length: 60 }, (_, i) => `Line ${i}: the quarterly figures are attached, please review before Friday.`).join('\n');
  return new MailComposer({
    from: 'partner@elsewhere.example',
    to: 'john@example.com',
    subject: 'Quarterly figures',
    text,
    attachments: [{ filename: 'figures.pdf', content: pdf }],
  })
    .compile()
    .build();
}

export async function benchFilters(): Promise<string> {
  const [clamd, spamd] = await Promise.all([startClamd(), startSpamd()]);
  const dataDir = mkdtempSync(join(tmpdir(), 'postern-bench-filters-'));
  try {
    const settings = openSettings(dataDir);
    settings.set('filter.attachments.executables', true);
    settings.set('filter.attachments.archives', true);
    const clamav = clamavSchema.parse({ host: clamd.host, port: clamd.port });
    const spamassassin = spamassassinSchema.parse({ host: spamd.host, port: spamd.port });
    const pipeline = buildPipeline({ config: { clamav, spamassassin, dns: { timeoutMs: 2000 } }, settings, hostname: 'mx.example.com', log: silentLogger });
    const message = await typicalMessage();
    const scanner = new ClamdScanner(clamav);
    const spamc = new Spamc({ host: spamd.host, port: spamd.port, timeoutMs: 30_000 });
    const n = Number(process.env.POSTERN_BENCH_FILTERS_N ?? 100);
    // Interleaved rounds (clamd, spamd, both, pipeline, one after the other, n times) so that all four see the
    // same load: on a shared 2-core machine spamd's time drifts by a factor of two over a minute.
    const ctx = () => ({ id: 'BENCH', client: { address: '192.0.2.10', listener: 'submission' as const, user: 'john.smith' }, from: 'john@example.com', recipients: ['friend@elsewhere.example'], message, tags: {} });
    const what: [string, () => Promise<unknown>][] = [
      ['clam', () => scanner.scan(message)],
      ['spam', () => spamc.check(message)],
      // Both daemons asked at once through bare clients: what the pipeline cannot beat now that its stages run in
      // parallel (on 2 cores clamd and spamd compete for the CPU, so this is more than the slower one alone).
      ['both', () => Promise.all([scanner.scan(message), spamc.check(message)])],
      // The submission listener: mail-auth and DNSBL skip it, so the pipeline runs the content stages only,
      // as for a message from a user; attachments, clamav and spamassassin all run.
      ['pipe', () => pipeline.run('data', ctx())],
    ];
    const samples = new Map<string, number[]>(what.map(([k]) => [k, []]));
    for (let i = 0; i < n + 10; i++) {
      for (const [k, fn] of what) {
        const t0 = process.hrtime.bigint();
        await fn();
        if (i >= 10) samples.get(k)!.push(Number(process.hrtime.bigint() - t0) / 1000);
      }
    }
    const stats = (k: string) => {
      const v = samples.get(k)!.sort((a, b) => a - b);
      return { p50: percentile(v, 50), p99: percentile(v, 99) };
    };
    const [clamStats, spamStats, bothStats, pipeStats] = ['clam', 'spam', 'both', 'pipe'].map(stats);
    settings.close();
    const daemons = clamStats.p50 + spamStats.p50;
    const slowest = Math.max(clamStats.p50, spamStats.p50);
    const overhead = pipeStats.p50 - daemons;
    return [
      `Filters: data-phase pipeline on a ${Math.round(message.length / 1024)} KiB message with a PDF attachment (n=${n} each)`,
      table([
        ['what', 'p50', 'p99'],
        ['clamd INSTREAM alone (ClamdScanner)', us(clamStats.p50), us(clamStats.p99)],
        ['spamd SYMBOLS alone (Spamc)', us(spamStats.p50), us(spamStats.p99)],
        ['clamd and spamd at once (bare clients)', us(bothStats.p50), us(bothStats.p99)],
        ['pipeline: attachments + clamav + spamassassin + mail-auth', us(pipeStats.p50), us(pipeStats.p99)],
      ]),
      `pipeline p50 against the slowest daemon alone: +${(((pipeStats.p50 - slowest) / slowest) * 100).toFixed(1)} %; ` +
        `against both daemons at once: +${(((pipeStats.p50 - bothStats.p50) / bothStats.p50) * 100).toFixed(1)} %; ` +
        `against their sum (the sequential pipeline's floor): ${(pipeStats.p50 / daemons).toFixed(3)}×, overhead ${us(overhead)}`,
    ].join('\n');
  } finally {
    await Promise.all([clamd.destroy(), spamd.destroy()]);
    rmSync(dataDir, { recursive: true, force: true });
  }
}
