/**
 * Maildir++ quota: the `maildirsize` file in the Maildir root, as Courier's README.maildirquota defines it and
 * Dovecot's "maildir" quota backend reads and writes it.
 *
 *   1048576S          ← quota definition (S = bytes, C = messages; '' = none known)
 *   20480 12          ← totals written by the last recalculation
 *   1024 1            ← one line appended per delivery (negative for removals), in one O_APPEND write
 *
 * Not locked: appends are atomic on a local file system, and whenever the file grows to 5120 bytes (or is missing,
 * or unreadable) it is recalculated from the `,S=` sizes in the file names, which repairs any drift.
 * Unlike Courier's default build, Trash counts against the quota, as in Dovecot (its default quota rules).
 */
import { randomBytes } from 'node:crypto';
import { closeSync, constants, existsSync, openSync } from 'node:fs';
import { open, readdir, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FILE_MODE, errorCode, writeAllSync } from './fs-util.js';
import { parseMaildirFileName } from './names.js';

export const MAILDIRSIZE = 'maildirsize';

/** README.maildirquota: "if its size is at least 5120 bytes, recalculate it". */
export const MAILDIRSIZE_MAX_BYTES = 5120;

/** README.maildirquota: an over-quota maildirsize this old is recounted before it refuses mail. */
export const MAILDIRSIZE_STALE_MS = 15 * 60 * 1000;

export interface MaildirSize {
  /** First line as written, e.g. '1048576S' or '1048576S,1000C'. */
  definition: string;
  /** The S part of the definition; undefined when it has none. */
  quotaBytes?: number;
  bytes: number;
  messages: number;
  /** Number of count lines: 1 right after a recalculation. */
  lines: number;
}

export type MaildirSizeRead = ({ ok: true } & MaildirSize) | { ok: false; definition?: string };

export function quotaDefinition(quotaBytes: number | undefined): string {
  return quotaBytes && quotaBytes > 0 ? `${quotaBytes}S` : '';
}

function definitionBytes(definition: string): number | undefined {
  for (const item of definition.split(',')) {
    const m = /^\s*(\d+)S\s*$/.exec(item);
    if (m) return Number(m[1]);
  }
  return undefined;
}

/** Reads and sums `maildirsize`; `ok: false` when it is missing, too long or malformed (recalculate). */
export async function readMaildirSize(maildir: string): Promise<MaildirSizeRead> {
  let fh;
  try {
    fh = await open(join(maildir, MAILDIRSIZE), constants.O_RDONLY);
  } catch (err) {
    if (errorCode(err) === 'ENOENT') return { ok: false };
    throw err;
  }
  let text: string;
  try {
    // One read of at most 5120 bytes, as the spec suggests: filling the buffer means "recalculate".
    const buf = Buffer.alloc(MAILDIRSIZE_MAX_BYTES);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    text = buf.subarray(0, bytesRead).toString('latin1');
    if (bytesRead >= MAILDIRSIZE_MAX_BYTES) return { ok: false, definition: text.slice(0, Math.max(0, text.indexOf('\n'))) };
  } finally {
    await fh.close();
  }
  const lines = text.split('\n');
  const definition = lines.shift()!;
  // The text ends with '\n', so the last element is ''; anything else there is a half-written line.
  if (lines.pop() !== '') return { ok: false, definition };
  let bytes = 0;
  let messages = 0;
  for (const line of lines) {
    const m = /^\s*(-?\d+)\s+(-?\d+)\s*$/.exec(line);
    if (!m) return { ok: false, definition };
    bytes += Number(m[1]);
    messages += Number(m[2]);
  }
  if (lines.length === 0 || bytes < 0 || messages < 0) return { ok: false, definition };
  return { ok: true, definition, quotaBytes: definitionBytes(definition), bytes, messages, lines: lines.length };
}

export async function maildirSizeIsStale(maildir: string): Promise<boolean> {
  try {
    return Date.now() - (await stat(join(maildir, MAILDIRSIZE))).mtimeMs >= MAILDIRSIZE_STALE_MS;
  } catch {
    return true;
  }
}

/**
 * Appends one `<bytes> <count>` line in a single write with O_APPEND, so concurrent writers (other deliveries,
 * Dovecot) never interleave within a line. Returns false when there is no maildirsize to append to.
 */
export async function appendMaildirSize(maildir: string, bytes: number, messages: number): Promise<boolean> {
  // Synchronous, as the Maildir delivery around it (src/lib/durable-fs.ts): a line appended to the page cache, and
  // without a quota most often only an ENOENT.
  const path = join(maildir, MAILDIRSIZE);
  // Most mailboxes have no quota, so no maildirsize: existsSync (access(2)) answers that without an exception
  // thrown and caught per delivered message (issue 11). The catch below stays for a file removed in between.
  if (!existsSync(path)) return false;
  let fd;
  try {
    fd = openSync(path, constants.O_WRONLY | constants.O_APPEND);
  } catch (err) {
    if (errorCode(err) === 'ENOENT') return false;
    throw err;
  }
  try {
    writeAllSync(fd, Buffer.from(`${bytes} ${messages}\n`, 'latin1'));
  } finally {
    closeSync(fd);
  }
  return true;
}

interface Scan {
  bytes: number;
  messages: number;
  /** new/ and cur/ directories with the mtime seen before listing them. */
  dirs: Map<string, number>;
}

async function scan(maildir: string): Promise<Scan> {
  const result: Scan = { bytes: 0, messages: 0, dirs: new Map() };
  let entries;
  try {
    entries = await readdir(maildir, { withFileTypes: true });
  } catch (err) {
    if (errorCode(err) === 'ENOENT') return result;
    throw err;
  }
  const folders = [maildir];
  for (const e of entries) if (e.isDirectory() && e.name.startsWith('.') && e.name !== '.' && e.name !== '..') folders.push(join(maildir, e.name));
  await Promise.all(
    folders.flatMap((folder) =>
      ['new', 'cur'].map(async (sub) => {
        const dir = join(folder, sub);
        let names: string[];
        try {
          result.dirs.set(dir, (await stat(dir)).mtimeMs);
          names = await readdir(dir);
        } catch (err) {
          if (errorCode(err) === 'ENOENT') return;
          throw err;
        }
        for (const name of names) {
          if (name.startsWith('.')) continue;
          let size = parseMaildirFileName(name).size;
          if (size === undefined) {
            // Not written by a Maildir++ writer: stat it. A file gone meanwhile was expunged; skip it.
            try {
              size = (await stat(join(dir, name))).size;
            } catch (err) {
              if (errorCode(err) === 'ENOENT') continue;
              throw err;
            }
          }
          result.bytes += size;
          result.messages += 1;
        }
      }),
    ),
  );
  return result;
}

async function changedSince(dirs: Map<string, number>): Promise<boolean> {
  for (const [dir, mtimeMs] of dirs) {
    try {
      if ((await stat(dir)).mtimeMs !== mtimeMs) return true;
    } catch {
      return true;
    }
  }
  return false;
}

/**
 * Recalculates `maildirsize` from the file names (README.maildirquota "Calculating maildirsize"): sums `,S=` of
 * every message in new/ and cur/ of the root and of every folder, writes the file in tmp/ and renames it into
 * place. When a new/ or cur/ directory changed during the scan it tries again; after three tries it removes the
 * file (the next reader recalculates) and returns its numbers anyway. When the Maildir does not exist yet, nothing
 * is written and the usage is zero.
 */
export async function recalculateMaildirSize(maildir: string, definition: string): Promise<MaildirSize> {
  const path = join(maildir, MAILDIRSIZE);
  for (let attempt = 1; ; attempt++) {
    const counted = await scan(maildir);
    const result: MaildirSize = {
      definition,
      quotaBytes: definitionBytes(definition),
      bytes: counted.bytes,
      messages: counted.messages,
      lines: 1,
    };
    const tmp = join(maildir, 'tmp', `${Date.now()}.${process.pid}_${randomBytes(6).toString('hex')}.maildirsize`);
    try {
      await writeFile(tmp, `${definition}\n${counted.bytes} ${counted.messages}\n`, { flag: 'wx', mode: FILE_MODE });
    } catch (err) {
      if (errorCode(err) === 'ENOENT') return result; // no Maildir (or no tmp/) yet
      throw err;
    }
    try {
      await rename(tmp, path);
    } catch (err) {
      await unlink(tmp).catch(() => {});
      throw err;
    }
    if (!(await changedSince(counted.dirs))) return result;
    if (attempt === 3) {
      await unlink(path).catch(() => {});
      return result;
    }
  }
}
