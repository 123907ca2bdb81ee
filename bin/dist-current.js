// Whether dist/ (scripts/build.mjs) may stand in for src/: see bin/postern.js. Plain JavaScript, because it runs
// before anything can load TypeScript.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** The stamp scripts/build.mjs writes after tsc succeeded: the time (ms since the epoch) the build began. */
export const BUILT_STAMP = '.built';

/**
 * True when `root`/dist/.built records a build that began after the last change under `root`/src: every file and
 * every directory (a directory's mtime moves when an entry is added, removed or renamed, which catches a deleted
 * source) older than the moment tsc started reading. About 300 stat() calls here, a few milliseconds.
 */
export function distIsCurrent(root) {
  let started;
  try {
    started = Number(readFileSync(join(root, 'dist', BUILT_STAMP), 'utf8'));
  } catch {
    return false;
  }
  if (!Number.isFinite(started) || started <= 0) return false;
  const older = (dir) => {
    if (statSync(dir).mtimeMs >= started) return false;
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory() ? !older(p) : statSync(p).mtimeMs >= started) return false;
    }
    return true;
  };
  try {
    return older(join(root, 'src'));
  } catch {
    return false;
  }
}
