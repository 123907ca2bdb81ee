/**
 * Where delivery finds the scripts it runs. The user's active script is Pigeonhole's
 * `sieve = file:~/sieve;active=~/.dovecot.sieve`: `<home>/.dovecot.sieve`, a symlink to `sieve/NAME.sieve` (or,
 * in old Dovecot setups, a plain file), so a mailbox migrated from NethServer keeps its filters. ManageSieve
 * (src/sieve/storage.ts) writes the same layout. The admin before script and the global include directory come
 * from config `sieve`.
 */
import { readFile, readlink } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';

export const ACTIVE_LINK = '.dovecot.sieve';

/** The active script of a mailbox home, or null when there is none (no link, or a link to nothing). */
export async function readActiveScript(home: string): Promise<{ path: string; name: string; text: string } | null> {
  const link = join(home, ACTIVE_LINK);
  let target: string;
  try {
    target = resolve(home, await readlink(link));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return null;
    // EINVAL: a plain file, as Dovecot before the sieve/ directory kept it.
    if (code !== 'EINVAL') throw err;
    target = link;
  }
  try {
    const text = await readFile(target, 'utf8');
    return { path: target, name: basename(target).replace(/\.sieve$/, ''), text };
  } catch (err) {
    // A dangling link means no active script (Pigeonhole logs and delivers as if none).
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

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
