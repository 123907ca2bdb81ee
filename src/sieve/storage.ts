/**
 * Sieve scripts of one mailbox, stored as Dovecot's Pigeonhole stores them with
 * `sieve = file:~/sieve;active=~/.dovecot.sieve` (NethServer's setting), so that a migrated mailbox keeps its
 * filters and Dovecot pointed at our store reads ours:
 *
 *   <home>/sieve/NAME.sieve      one file per script, UTF-8 (RFC 5228 §2.1)
 *   <home>/sieve/tmp/            where a script is written before it is renamed into place
 *   <home>/.dovecot.sieve        symlink → sieve/NAME.sieve: the active script (at most one, RFC 5804 §1.6)
 *
 * `<home>` is the directory holding the user's `Maildir/` (MaildirStore.homePath).
 *
 * A `.dovecot.sieve` that is a regular file (a hand-made filter from before ManageSieve, or a copy that lost its
 * link) is what Pigeonhole does with it: it stays the script delivery runs (getActive returns it, with name null),
 * it is not listed (it has no name in the storage), and the first SETACTIVE or deactivation moves it into the
 * storage as `dovecot.orig` (another name when taken) before the link replaces it, so it is never lost.
 * A link whose target is `<anything>/sieve/NAME.sieve` names the script NAME here (an absolute link made on the old
 * server points at its old path); a link anywhere else is no active script of ours.
 *
 * Durability (DESIGN.md "250 only after fsync"): a script is written to tmp/, fsynced, renamed into place and the
 * directory fsynced before put() resolves; the active link is made under a temporary name and renamed over
 * `.dovecot.sieve` (atomic: delivery sees the old script or the new one, never none), then the home fsynced.
 */
import { randomBytes } from 'node:crypto';
import { lstatSync } from 'node:fs';
import { link, lstat, open, readdir, readFile, readlink, rename, stat, symlink, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { ensureDir, errorCode, fsyncDir, FILE_MODE, ignoreCode, writeAll } from '../store/fs-util.js';
import { KeyedMutex } from '../store/keyed-mutex.js';

export const SCRIPT_DIR = 'sieve';
export const ACTIVE_LINK = '.dovecot.sieve';
export const SCRIPT_EXT = '.sieve';
/** The name Pigeonhole gives a regular-file active script when it moves it into the storage. */
export const RESCUED_NAME = 'dovecot.orig';
/** Bytes of a script name in UTF-8; with ".sieve" the file name stays well below NAME_MAX (255). */
export const MAX_NAME_BYTES = 200;

/** Limits on one mailbox's scripts; 0 = no limit (Pigeonhole's sieve_quota_max_scripts / sieve_quota_max_storage). */
export interface SieveQuota {
  maxScripts: number;
  /** Pigeonhole's sieve_max_script_size (default 1M). */
  maxScriptBytes: number;
  maxStorageBytes: number;
}

export const DEFAULT_SIEVE_QUOTA: SieveQuota = { maxScripts: 50, maxScriptBytes: 1024 * 1024, maxStorageBytes: 10 * 1024 * 1024 };

/**
 * Why a storage call was refused, named by the RFC 5804 §1.3 response code the ManageSieve server answers with
 * (`QUOTA` alone is the total-storage limit, which has no code of its own).
 */
export type SieveStorageCode = 'NONEXISTENT' | 'ALREADYEXISTS' | 'ACTIVE' | 'QUOTA' | 'QUOTA/MAXSCRIPTS' | 'QUOTA/MAXSIZE' | 'BADNAME';

export class SieveStorageError extends Error {
  constructor(
    readonly code: SieveStorageCode,
    message: string,
  ) {
    super(message);
    this.name = 'SieveStorageError';
  }
}

export interface ScriptListing {
  name: string;
  active: boolean;
}

export interface ActiveScript {
  /** null: `.dovecot.sieve` is a regular file, outside the storage. */
  name: string | null;
  text: string;
}

export interface SieveUsage {
  scripts: number;
  bytes: number;
}

/**
 * RFC 5804 §1.6: a script name is Net-Unicode (RFC 5198: UTF-8 in NFC) without control characters (C0, DEL, C1)
 * and without U+2028/U+2029; '/' would leave the storage directory. Returns why it is refused, or null.
 */
export function scriptNameProblem(name: string): string | null {
  if (name === '') return 'empty script name';
  // A lone surrogate does not survive a round trip through UTF-8.
  if (Buffer.from(name, 'utf8').toString('utf8') !== name) return 'script name is not valid Unicode';
  if (name.normalize('NFC') !== name) return 'script name is not in Unicode NFC (RFC 5198)';
  for (const ch of name) {
    const c = ch.codePointAt(0)!;
    if (c < 0x20 || (c >= 0x7f && c <= 0x9f) || c === 0x2028 || c === 0x2029) return 'script name contains a control character';
  }
  if (name.includes('/')) return "script name contains '/'";
  if (Buffer.byteLength(name, 'utf8') > MAX_NAME_BYTES) return 'script name too long';
  return null;
}

function checkName(name: string): void {
  const problem = scriptNameProblem(name);
  if (problem) throw new SieveStorageError('BADNAME', problem);
}

export interface SieveScriptStoreOptions {
  quota?: Partial<SieveQuota>;
}

export class SieveScriptStore {
  readonly quota: SieveQuota;
  /** Per home: quota checks and the changes they admit run one at a time (two PUTSCRIPTs cannot together overshoot). */
  private readonly locks = new KeyedMutex();

  constructor(opts: SieveScriptStoreOptions = {}) {
    this.quota = { ...DEFAULT_SIEVE_QUOTA, ...opts.quota };
  }

  /** The scripts by name (sorted), with the one `.dovecot.sieve` links to marked active. */
  async list(home: string): Promise<ScriptListing[]> {
    const active = await this.activeName(home);
    const names = await this.names(home);
    return names.map((name) => ({ name, active: name === active }));
  }

  /** A script's text; null when there is none of that name. */
  async get(home: string, name: string): Promise<string | null> {
    checkName(name);
    try {
      return await readFile(this.scriptPath(home, name), 'utf8');
    } catch (err) {
      if (errorCode(err) === 'ENOENT' || errorCode(err) === 'EISDIR') return null;
      throw err;
    }
  }

  /** Whether a script of `bytes` may be stored as `name` now (RFC 5804 §2.3 HAVESPACE); throws the quota refusal. */
  async checkSpace(home: string, name: string, bytes: number): Promise<void> {
    checkName(name);
    await this.checkQuota(home, name, bytes);
  }

  /** Stores (creates or replaces) a script durably; the caller has compiled it. Throws QUOTA*, BADNAME. */
  async put(home: string, name: string, text: string): Promise<void> {
    checkName(name);
    const data = Buffer.from(text, 'utf8');
    await this.locks.run(home, async () => {
      await this.checkQuota(home, name, data.length);
      await this.writeScript(home, name, data);
    });
  }

  /** RFC 5804 §2.10: the active script cannot be deleted (ACTIVE); an unknown one is NONEXISTENT. */
  async delete(home: string, name: string): Promise<void> {
    checkName(name);
    await this.locks.run(home, async () => {
      if ((await this.activeName(home)) === name) throw new SieveStorageError('ACTIVE', 'cannot delete the active script');
      try {
        await unlink(this.scriptPath(home, name));
      } catch (err) {
        if (errorCode(err) === 'ENOENT') throw new SieveStorageError('NONEXISTENT', 'no such script');
        throw err;
      }
      // Pigeonhole's compiled copy, when Dovecot ran this script before the migration.
      await unlink(join(home, SCRIPT_DIR, `${name}.svbin`)).catch(ignoreCode('ENOENT'));
      await fsyncDir(join(home, SCRIPT_DIR));
    });
  }

  /**
   * RFC 5804 §2.11.1 RENAMESCRIPT: NONEXISTENT, ALREADYEXISTS; an active script stays active under its new name.
   * Made as link(new) → relink → unlink(old): a crash leaves both names or the new one, never a dangling active link.
   */
  async rename(home: string, oldName: string, newName: string): Promise<void> {
    checkName(oldName);
    checkName(newName);
    await this.locks.run(home, async () => {
      const from = this.scriptPath(home, oldName);
      const to = this.scriptPath(home, newName);
      if (!(await isFile(from))) throw new SieveStorageError('NONEXISTENT', 'no such script');
      if (oldName === newName) return;
      try {
        await link(from, to);
      } catch (err) {
        if (errorCode(err) === 'EEXIST') throw new SieveStorageError('ALREADYEXISTS', 'a script of that name exists');
        throw err;
      }
      await fsyncDir(join(home, SCRIPT_DIR));
      if ((await this.activeName(home)) === oldName) await this.link(home, newName);
      await unlink(from);
      await unlink(join(home, SCRIPT_DIR, `${oldName}.svbin`)).catch(ignoreCode('ENOENT'));
      await fsyncDir(join(home, SCRIPT_DIR));
    });
  }

  /** RFC 5804 §2.8 SETACTIVE: `.dovecot.sieve` → sieve/NAME.sieve; null deactivates (removes the link). */
  async setActive(home: string, name: string | null): Promise<void> {
    if (name !== null) checkName(name);
    await this.locks.run(home, async () => {
      if (name !== null && !(await isFile(this.scriptPath(home, name)))) throw new SieveStorageError('NONEXISTENT', 'no such script');
      await this.rescueRegularFile(home);
      if (name !== null) return this.link(home, name);
      try {
        const st = await lstat(join(home, ACTIVE_LINK));
        if (!st.isSymbolicLink()) return;
      } catch (err) {
        if (errorCode(err) === 'ENOENT') return;
        throw err;
      }
      await unlink(join(home, ACTIVE_LINK));
      await fsyncDir(home);
    });
  }

  /** The script delivery runs: the linked one, or a regular `.dovecot.sieve` (name null); null when none. */
  async getActive(home: string): Promise<ActiveScript | null> {
    const path = join(home, ACTIVE_LINK);
    // Synchronous: delivery asks this for every message (issue 11), and most users have no script. An lstat of a
    // name in a directory just used is answered from the dentry cache in microseconds; the promise version is a
    // hand-off to the thread pool and back, tens of microseconds of event loop. throwIfNoEntry: the usual answer,
    // no script, comes back as undefined instead of an Error built (with its stack) and caught per message.
    const st = lstatSync(path, { throwIfNoEntry: false });
    if (st === undefined) return null;
    if (st.isFile()) return { name: null, text: await readFile(path, 'utf8') };
    const name = await this.activeName(home);
    if (name === null) return null;
    const text = await this.get(home, name);
    return text === null ? null : { name, text };
  }

  /** Scripts and bytes counted against the quota. */
  async usage(home: string): Promise<SieveUsage> {
    let scripts = 0;
    let bytes = 0;
    // In parallel: a mailbox may hold dozens of scripts, and HAVESPACE and PUTSCRIPT both ask.
    const sizes = await Promise.all((await this.names(home)).map((name) => stat(this.scriptPath(home, name)).catch(() => null)));
    for (const st of sizes) {
      if (!st?.isFile()) continue;
      scripts++;
      bytes += st.size;
    }
    return { scripts, bytes };
  }

  private scriptPath(home: string, name: string): string {
    return join(home, SCRIPT_DIR, `${name}${SCRIPT_EXT}`);
  }

  /** Names of the `*.sieve` files in sieve/ (tmp/, compiled `.svbin` and anything else ignored). */
  private async names(home: string): Promise<string[]> {
    let entries;
    try {
      entries = await readdir(join(home, SCRIPT_DIR), { withFileTypes: true });
    } catch (err) {
      if (errorCode(err) === 'ENOENT' || errorCode(err) === 'ENOTDIR') return [];
      throw err;
    }
    return entries
      .filter((e) => e.isFile() && e.name.endsWith(SCRIPT_EXT) && e.name.length > SCRIPT_EXT.length)
      .map((e) => e.name.slice(0, -SCRIPT_EXT.length))
      .filter((n) => scriptNameProblem(n) === null)
      .sort();
  }

  /** The name `.dovecot.sieve` links to, when it links into a `sieve/` directory; null otherwise. */
  private async activeName(home: string): Promise<string | null> {
    let target: string;
    try {
      target = await readlink(join(home, ACTIVE_LINK));
    } catch (err) {
      // EINVAL: a regular file; ENOENT: no active script.
      if (errorCode(err) === 'ENOENT' || errorCode(err) === 'EINVAL') return null;
      throw err;
    }
    const file = basename(target);
    if (basename(dirname(target)) !== SCRIPT_DIR || !file.endsWith(SCRIPT_EXT)) return null;
    const name = file.slice(0, -SCRIPT_EXT.length);
    if (scriptNameProblem(name) !== null) return null;
    return (await isFile(this.scriptPath(home, name))) ? name : null;
  }

  private async checkQuota(home: string, name: string, bytes: number): Promise<void> {
    const q = this.quota;
    if (q.maxScriptBytes > 0 && bytes > q.maxScriptBytes) {
      throw new SieveStorageError('QUOTA/MAXSIZE', `script too large (limit ${q.maxScriptBytes} bytes)`);
    }
    if (q.maxScripts <= 0 && q.maxStorageBytes <= 0) return;
    const usage = await this.usage(home);
    const existing = await stat(this.scriptPath(home, name)).catch(() => null);
    const replaced = existing?.isFile() ? existing.size : undefined;
    const scripts = usage.scripts + (replaced === undefined ? 1 : 0);
    if (q.maxScripts > 0 && scripts > q.maxScripts) {
      throw new SieveStorageError('QUOTA/MAXSCRIPTS', `too many scripts (limit ${q.maxScripts})`);
    }
    if (q.maxStorageBytes > 0 && usage.bytes - (replaced ?? 0) + bytes > q.maxStorageBytes) {
      throw new SieveStorageError('QUOTA', `script storage full (limit ${q.maxStorageBytes} bytes)`);
    }
  }

  private async writeScript(home: string, name: string, data: Buffer): Promise<void> {
    const dir = join(home, SCRIPT_DIR);
    const tmpDir = join(dir, 'tmp');
    const tmp = join(tmpDir, `${Date.now()}.${process.pid}.${randomBytes(6).toString('hex')}`);
    let fh;
    try {
      fh = await open(tmp, 'wx', FILE_MODE);
    } catch (err) {
      if (errorCode(err) !== 'ENOENT') throw err;
      await ensureDir(tmpDir);
      fh = await open(tmp, 'wx', FILE_MODE);
    }
    try {
      await writeAll(fh, data);
      await fh.sync();
    } catch (err) {
      await fh.close().catch(() => undefined);
      await unlink(tmp).catch(() => undefined);
      throw err;
    }
    await fh.close();
    await rename(tmp, this.scriptPath(home, name));
    await fsyncDir(dir);
  }

  /** `.dovecot.sieve` → sieve/NAME.sieve, relative as Pigeonhole makes it, replacing what was there in one rename. */
  private async link(home: string, name: string): Promise<void> {
    const tmp = join(home, `${ACTIVE_LINK}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
    await symlink(`${SCRIPT_DIR}/${name}${SCRIPT_EXT}`, tmp);
    try {
      await rename(tmp, join(home, ACTIVE_LINK));
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      throw err;
    }
    await fsyncDir(home);
  }

  /** A regular-file `.dovecot.sieve` is moved into the storage (as Pigeonhole does) before the link replaces it. */
  private async rescueRegularFile(home: string): Promise<void> {
    const path = join(home, ACTIVE_LINK);
    const st = await lstat(path).catch(() => null);
    if (!st?.isFile()) return;
    const taken = new Set(await this.names(home));
    let name = RESCUED_NAME;
    for (let i = 2; taken.has(name); i++) name = `${RESCUED_NAME}-${i}`;
    await ensureDir(join(home, SCRIPT_DIR));
    await rename(path, this.scriptPath(home, name));
    await fsyncDir(join(home, SCRIPT_DIR));
    await fsyncDir(home);
  }
}

async function isFile(path: string): Promise<boolean> {
  const st = await stat(path).catch(() => null);
  return st?.isFile() ?? false;
}
