/**
 * The scripts RFC 6609 `include` reads at delivery: personal ones from the mailbox's `sieve/` directory (the
 * Pigeonhole layout src/sieve/storage.ts keeps), global ones from config sieve.globalDir.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** RFC 6609 `include :personal "name"`: `<home>/sieve/name.sieve`; null when absent or the name is unsafe. */
export function readPersonalInclude(home: string, name: string): string | null {
  return readNamed(join(home, 'sieve'), name);
}

/** RFC 6609 `include :global "name"`: `<globalDir>/name.sieve`. */
export function readGlobalInclude(dir: string | undefined, name: string): string | null {
  return dir ? readNamed(dir, name) : null;
}

function readNamed(dir: string, name: string): string | null {
  // RFC 6609 §3.2 / RFC 5804 §1.6: a script name is not a path.
  if (!name || name.includes('/') || name.includes('\0') || name.startsWith('.')) return null;
  try {
    return readFileSync(join(dir, `${name}.sieve`), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}
