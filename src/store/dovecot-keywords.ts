/**
 * Dovecot's `dovecot-keywords` (src/lib-storage/index/maildir/maildir-keywords.c): which IMAP keyword each of the
 * 26 lowercase letters in a Maildir file name's flags stands for. Lines are `<index> <keyword>`; letter 'a' is
 * index 0 … 'z' is 25. Names compare case-insensitively (RFC 3501 §2.3.2; Dovecot hashes them with strcasecmp).
 *
 * The file is only changed under the folder's dovecot-uidlist lock (Dovecot relies on that and has no lock of its
 * own for readers); the writer goes through `dovecot-keywords.lock` (created O_EXCL, filled, fsynced, renamed over
 * the file) and makes the mtime grow on every write, since that is how Dovecot notices a change.
 *
 * A folder needing more than 26 keywords keeps the rest in postern's index only (Dovecot too keeps them only in
 * its own index): both servers then see the 26 lettered ones.
 */
import { constants, type Stats } from 'node:fs';
import { open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { errorCode, writeAll } from './fs-util.js';

export const KEYWORDS_FILE = 'dovecot-keywords';
export const MAX_KEYWORD_LETTERS = 26;

/** Keyword names by letter index (undefined where a letter is unused). */
export type KeywordList = (string | undefined)[];

export function parseKeywords(text: string): KeywordList {
  const list: KeywordList = [];
  const seen = new Set<string>();
  for (const line of text.split('\n')) {
    const space = line.indexOf(' ');
    if (space < 0) continue; // the first line of a converted Courier .customflags file, or garbage
    const idxText = line.slice(0, space);
    const name = line.slice(space + 1);
    if (!/^\d+$/.test(idxText)) continue;
    const idx = Number(idxText);
    // Dovecot ignores out-of-range indexes, empty names and repeats of a name ("shouldn't happen").
    if (idx >= MAX_KEYWORD_LETTERS || name === '' || seen.has(name.toLowerCase())) continue;
    seen.add(name.toLowerCase());
    list[idx] = name;
  }
  return list;
}

export function serializeKeywords(list: KeywordList): string {
  let out = '';
  list.forEach((name, i) => {
    if (name !== undefined) out += `${i} ${name}\n`;
  });
  return out;
}

/** Letters ↔ keywords for one folder. */
export class KeywordMap {
  readonly list: KeywordList;
  private readonly index = new Map<string, number>();

  constructor(list: KeywordList = []) {
    this.list = list;
    list.forEach((name, i) => {
      if (name !== undefined) this.index.set(name.toLowerCase(), i);
    });
  }

  /** The letter of a keyword, undefined when it has none. */
  letterOf(keyword: string): string | undefined {
    const i = this.index.get(keyword.toLowerCase());
    return i === undefined ? undefined : String.fromCharCode(97 + i);
  }

  /** The keyword of a lowercase letter, undefined when the file names none for it. */
  keywordOf(letter: string): string | undefined {
    return this.list[letter.charCodeAt(0) - 97];
  }

  /** A copy with `keywords` given letters (first free indexes); those that find no free letter are left out. */
  withKeywords(keywords: string[]): KeywordMap {
    const list = [...this.list];
    const have = new Set(this.index.keys());
    for (const k of keywords) {
      if (have.has(k.toLowerCase())) continue;
      let free = 0;
      while (free < MAX_KEYWORD_LETTERS && list[free] !== undefined) free++;
      if (free >= MAX_KEYWORD_LETTERS) break;
      list[free] = k;
      have.add(k.toLowerCase());
    }
    return new KeywordMap(list);
  }

  get size(): number {
    return this.index.size;
  }
}

export function keywordsSignature(st: Stats | undefined): string {
  return st ? `${st.ino}:${st.size}:${st.mtimeMs}` : '';
}

export async function readKeywords(dir: string): Promise<{ map: KeywordMap; signature: string }> {
  const path = join(dir, KEYWORDS_FILE);
  try {
    const st = await stat(path);
    const text = await readFile(path, 'utf8');
    return { map: new KeywordMap(parseKeywords(text)), signature: keywordsSignature(st) };
  } catch (err) {
    if (errorCode(err) === 'ENOENT') return { map: new KeywordMap(), signature: '' };
    throw err;
  }
}

/** Writes the file; the caller holds the folder's dovecot-uidlist lock. Returns the new signature. */
export async function writeKeywords(dir: string, map: KeywordMap): Promise<string> {
  const path = join(dir, KEYWORDS_FILE);
  const lockPath = `${path}.lock`;
  // Like maildir_keywords_commit: under the uidlist lock a keywords lock can only be a leftover.
  await unlink(lockPath).catch((err: unknown) => {
    if (errorCode(err) !== 'ENOENT') throw err;
  });
  const old = await stat(path).catch(() => undefined);
  const fh = await open(lockPath, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL, 0o600);
  try {
    await writeAll(fh, Buffer.from(serializeKeywords(map.list), 'utf8'));
    // "mtime must grow every time": Dovecot compares whole seconds.
    const now = Math.floor(Date.now() / 1000);
    const oldSecs = old ? Math.floor(old.mtimeMs / 1000) : 0;
    if (now <= oldSecs) await fh.utimes(now, oldSecs + 1);
    await fh.sync();
  } catch (err) {
    await fh.close();
    await unlink(lockPath).catch(() => undefined);
    throw err;
  }
  await fh.close();
  await rename(lockPath, path);
  return keywordsSignature(await stat(path));
}
