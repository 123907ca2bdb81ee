/**
 * A mailbox as a tar stream (`Maildir/...`, the layout Dovecot and every Maildir tool read), for the admin's
 * "export before it is erased". tar-fs reads the files as it goes, so a large mailbox is never held in memory.
 */
import { createRequire } from 'node:module';
import type { Readable } from 'node:stream';

interface TarFs {
  pack(cwd: string, opts?: { entries?: string[]; dereference?: boolean }): Readable;
}

const require = createRequire(import.meta.url);
const tarFs = require('tar-fs') as TarFs;

/** `dir` is the directory holding `Maildir/` (MailboxRegistry record dir, made absolute). */
export function exportMaildir(dir: string): Readable {
  // No dereference: a symlink inside a Maildir is not followed out of it.
  return tarFs.pack(dir, { entries: ['Maildir'], dereference: false });
}
