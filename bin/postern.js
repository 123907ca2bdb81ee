#!/usr/bin/env node
// Entry point for `npx postern` and `npm start`. It runs dist/ (src/ compiled by scripts/build.mjs, which `npm ci`
// runs as `prepare`) when that was built from the sources as they are now (bin/dist-current.js), else the
// TypeScript sources through tsx: a fresh `npm ci` is all it takes, and a source edited since the build is never
// shadowed by stale JavaScript. dist/ saves a running server the RSS of tsx's loader (issue 11: 10,000 idle IDLE
// connections in 600 MB). POSTERN_FROM_SOURCE=1 runs the sources whatever dist/ holds.
// Every fsync runs on libuv's thread pool (4 threads by default): with more, concurrent SMTP sessions and
// deliveries fsync in parallel (measured +40% for 20 concurrent deliveries). Must be set before any async I/O.
process.env.UV_THREADPOOL_SIZE ??= '32';
const { distIsCurrent } = await import('./dist-current.js');
const { fileURLToPath } = await import('node:url');

let main;
if (process.env.POSTERN_FROM_SOURCE !== '1' && distIsCurrent(fileURLToPath(new URL('..', import.meta.url)))) {
  ({ main } = await import('../dist/main.js'));
} else {
  const { register } = await import('tsx/esm/api');
  register();
  ({ main } = await import('../src/main.ts'));
}
process.exitCode = await main(process.argv.slice(2));
