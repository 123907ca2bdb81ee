/**
 * URLAUTH mailbox access keys (RFC 4467 §4, §7): one random key per user and mailbox, from which the INTERNAL
 * mechanism derives the token of every URL the user generates for that mailbox. RESETKEY replaces a key (or all of
 * a user's keys), which revokes every URL made with it.
 *
 * The keys live in the user's Maildir root, `postern-urlauth-keys.json` (mode 0600, written to a temporary file,
 * fsynced and renamed), so they survive restarts and travel with the mailbox in a backup. Each key remembers the
 * UIDVALIDITY of the folder it was made for: a folder deleted and created again under the same name gets a new
 * UIDVALIDITY, and URLs made for the old one (which may name a UID the new folder reuses) stop working.
 */
import { randomBytes } from 'node:crypto';
import { open, readFile, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { MailboxOwner } from './types.js';
import { ensureDir, errorCode, FILE_MODE, fsyncDir, writeAll } from './fs-util.js';
import { KeyedMutex } from './keyed-mutex.js';

export const URLAUTH_KEYS_FILE = 'postern-urlauth-keys.json';

/** RFC 4467 §7: the key must have at least 128 bits of entropy; 256 costs nothing. */
const KEY_BYTES = 32;

interface KeyFile {
  version: 1;
  /** By mailbox name as the user sees it (INBOX in capitals). */
  keys: Record<string, { key: string; uidValidity: number }>;
}

export interface UrlauthKeys {
  /** The key of a user's mailbox; with `create`, one is made when there is none (or only one for an older folder). */
  key(user: MailboxOwner, mailbox: string, uidValidity: number, create: boolean): Promise<Buffer | undefined>;
  /** RESETKEY: a new key for the mailbox, or (no mailbox) forgets every key of the user (new ones are made on use). */
  reset(user: MailboxOwner, mailbox?: string, uidValidity?: number): Promise<void>;
}

export class UrlauthKeyStore implements UrlauthKeys {
  private readonly locks = new KeyedMutex();

  constructor(private readonly opts: { root: (owner: MailboxOwner) => string }) {}

  private file(user: MailboxOwner): string {
    return join(this.opts.root(user), URLAUTH_KEYS_FILE);
  }

  async key(user: MailboxOwner, mailbox: string, uidValidity: number, create: boolean): Promise<Buffer | undefined> {
    const file = this.file(user);
    const found = (f: KeyFile) => {
      const k = f.keys[mailbox];
      return k && k.uidValidity === uidValidity ? Buffer.from(k.key, 'hex') : undefined;
    };
    const current = found(await this.read(file));
    if (current || !create) return current;
    return this.locks.run(file, async () => {
      const f = await this.read(file);
      const again = found(f);
      if (again) return again;
      const key = randomBytes(KEY_BYTES);
      f.keys[mailbox] = { key: key.toString('hex'), uidValidity };
      await this.write(file, f);
      return key;
    });
  }

  async reset(user: MailboxOwner, mailbox?: string, uidValidity?: number): Promise<void> {
    const file = this.file(user);
    await this.locks.run(file, async () => {
      const f = await this.read(file);
      if (mailbox === undefined) f.keys = {};
      else if (uidValidity !== undefined) f.keys[mailbox] = { key: randomBytes(KEY_BYTES).toString('hex'), uidValidity };
      else delete f.keys[mailbox];
      await this.write(file, f);
    });
  }

  private async read(file: string): Promise<KeyFile> {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      if (errorCode(err) === 'ENOENT') return { version: 1, keys: {} };
      throw err;
    }
    const parsed = JSON.parse(text) as Partial<KeyFile>;
    return { version: 1, keys: parsed.keys && typeof parsed.keys === 'object' ? { ...parsed.keys } : {} };
  }

  /** tmp → fsync → rename → fsync the directory: a key handed out in a URL is never lost by a crash. */
  private async write(file: string, f: KeyFile): Promise<void> {
    const dir = join(file, '..');
    await ensureDir(dir);
    const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    const fh = await open(tmp, 'w', FILE_MODE);
    try {
      await writeAll(fh, Buffer.from(JSON.stringify(f) + '\n'));
      await fh.sync();
    } finally {
      await fh.close();
    }
    try {
      await rename(tmp, file);
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      throw err;
    }
    await fsyncDir(dir);
  }
}
