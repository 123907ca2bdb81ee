/**
 * `npm run bench`: every benchmark, one after the other, each printing a table with ratios to its peer.
 * `npm run bench -- directory` runs only the named ones. Not part of `npm test`; nothing here asserts timings.
 */
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchCluster } from './cluster.bench.ts';
import { benchDirectory } from './directory.bench.ts';
import { benchFilters } from './filters.bench.ts';
import { benchImap } from './imap.bench.ts';
import { benchLimits } from './limits.bench.ts';
import { benchQueue } from './queue.bench.ts';
import { benchSmtp } from './smtp.bench.ts';
import { benchTrace } from './trace.bench.ts';
import { benchWeb } from './web.bench.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const BENCHES: Record<string, (root: string) => Promise<string>> = {
  cluster: benchCluster,
  directory: benchDirectory,
  filters: benchFilters,
  imap: benchImap,
  limits: benchLimits,
  queue: benchQueue,
  smtp: benchSmtp,
  trace: benchTrace,
  web: benchWeb,
};

const wanted = process.argv.slice(2).filter((a) => !a.startsWith('-'));
for (const [name, run] of Object.entries(BENCHES)) {
  if (wanted.length && !wanted.includes(name)) continue;
  const t0 = Date.now();
  console.log(`\n== ${name} ==`);
  console.log(await run(root));
  console.log(`(${((Date.now() - t0) / 1000).toFixed(1)} s)`);
}
