#!/usr/bin/env node
// `npm run build` (and `prepare`, which `npm ci` and `npm install` run): compiles src/ to dist/ with tsc, so that
// bin/postern.js can run JavaScript instead of the TypeScript sources through tsx. tsx's loader costs a running
// server 30-40 MB of RSS (Node 20 runs module hooks in a thread with its own V8 heap, and tsx keeps a source map
// of every module); issue 11 counts that against 10,000 idle IDLE connections.
//
// dist/ is a cache, never the truth: bin/postern.js uses it only while dist/.built says it was compiled from the
// sources as they are now (see there). A build that fails (type errors, no TypeScript because dev dependencies were
// omitted) leaves no stamp and exits 0: the server then runs from the sources, as before.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');
const stamp = join(dist, '.built');

let tsc;
try {
  tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
} catch {
  console.warn('postern build: TypeScript is not installed (dev dependencies omitted?); bin/postern.js runs the sources through tsx');
  process.exit(0);
}
// Taken before tsc reads anything: a source saved while it runs is newer than the stamp, and the sources win.
const started = Date.now();
rmSync(dist, { recursive: true, force: true });
const r = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json')], { cwd: root, stdio: 'inherit' });
if (r.status !== 0 || !existsSync(join(dist, 'main.js'))) {
  rmSync(stamp, { force: true });
  console.warn(`postern build: tsc failed (status ${String(r.status)}); bin/postern.js runs the sources through tsx`);
  process.exit(0);
}
// What src/ holds beside TypeScript (the web admin's public/ files, read next to the module that serves them).
copyAssets(join(root, 'src'), dist);
writeFileSync(stamp, `${started}\n`);

function copyAssets(from, to) {
  for (const e of readdirSync(from, { withFileTypes: true })) {
    const src = join(from, e.name);
    if (e.isDirectory()) copyAssets(src, join(to, e.name));
    else if (!e.name.endsWith('.ts')) {
      mkdirSync(to, { recursive: true });
      copyFileSync(src, join(to, e.name));
    }
  }
}
