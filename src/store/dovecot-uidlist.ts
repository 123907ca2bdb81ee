/**
 * Dovecot's `dovecot-uidlist` (src/lib-storage/index/maildir/maildir-uidlist.c), the file that gives a Maildir its
 * IMAP UIDs: postern reads and writes it so that a Maildir keeps its UIDVALIDITY and UIDs when it moves between
 * Dovecot and postern, or when both work on it in turn.
 *
 * Version 3 (Dovecot 1.1 and later):
 *   header: `3 V<uidvalidity> N<nextuid> G<mailbox guid, 32 hex>[ <key><value>...]`
 *   record: `<uid>[ <key><value>...] :<file name up to ':'>`   (keys A-Z: S size, W vsize, G guid, P/O POP3 ...)
 * Version 1 (Dovecot 1.0, Courier's courierimapuiddb): `1 <uidvalidity> <nextuid>`, records `<uid> <file name>`.
 *
 * Records are in ascending UID order; a file name may appear again further down with a new UID (Dovecot appends
 * one when an expunged file comes back), and the later line wins. The next UID is the larger of the header's N and
 * the last UID + 1, because new records are appended without rewriting the header.
 *
 * Changes happen under `dovecot-uidlist.lock` (dotlock.ts). New records are appended to the file (one write and one
 * fdatasync, whatever the folder's size), as Dovecot does; anything else rewrites it: `dovecot-uidlist.tmp`, written
 * and fdatasynced, renamed over the old file.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, constants, fstatSync, openSync, readFileSync, statSync, writeSync, type Stats } from 'node:fs';
import { unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { fdatasyncFd, openPooled, renamePooled } from '../lib/durable-fs.js';
import { errorCode, writeAllSync } from './fs-util.js';

export const UIDLIST_FILE = 'dovecot-uidlist';

export interface UidlistRecord {
  uid: number;
  /** The file name up to ':' (Dovecot's key: base name and ,S= ,W= fields, without the flags). */
  name: string;
  /** Extension fields as written, space-separated ('' when none): kept untouched when the file is rewritten. */
  ext: string;
}

export interface Uidlist {
  version: number;
  uidValidity: number;
  /** The next UID to assign: max(header N, last record's UID + 1). */
  nextUid: number;
  /** Mailbox GUID, 32 hex digits; '' when the file has none (version 1). */
  guid: string;
  /** Header fields other than V, N and G, kept as written. */
  headerExt: string;
  records: UidlistRecord[];
}

export class UidlistCorrupt extends Error {
  constructor(readonly line: number, reason: string) {
    super(`dovecot-uidlist line ${line}: ${reason}`);
    this.name = 'UidlistCorrupt';
  }
}

/** The part of a Maildir file name Dovecot's uidlist keys on: everything before ':'. */
export function uidlistName(fileName: string): string {
  const colon = fileName.indexOf(':');
  return colon < 0 ? fileName : fileName.slice(0, colon);
}

export function newMailboxGuid(): string {
  return randomBytes(16).toString('hex');
}

/** Parses the whole file in one pass. Throws UidlistCorrupt where Dovecot would call it broken. */
export function parseUidlist(text: string): Uidlist {
  let pos = text.indexOf('\n');
  if (pos < 0) throw new UidlistCorrupt(1, 'no complete header line');
  const header = text.slice(0, pos);
  if (!/^[0-9] /.test(header)) throw new UidlistCorrupt(1, 'invalid version number');
  const version = header.charCodeAt(0) - 48;
  let uidValidity = 0;
  let nextUid = 0;
  let guid = '';
  const extra: string[] = [];
  if (version === 1) {
    const m = /^1 (\d+) (\d+)/.exec(header);
    if (!m) throw new UidlistCorrupt(1, 'corrupted version 1 header');
    uidValidity = Number(m[1]);
    nextUid = Number(m[2]);
  } else if (version === 3) {
    for (const field of header.slice(2).split(' ')) {
      if (field === '') continue;
      const key = field[0];
      const value = field.slice(1);
      if (key === 'V' || key === 'N') {
        if (!/^\d+$/.test(value)) throw new UidlistCorrupt(1, `invalid ${key} value`);
        if (key === 'V') uidValidity = Number(value);
        else nextUid = Number(value);
      } else if (key === 'G') {
        if (!/^[0-9a-fA-F]{32}$/.test(value)) throw new UidlistCorrupt(1, 'invalid mailbox GUID');
        guid = value.toLowerCase();
      } else extra.push(field);
    }
  } else {
    throw new UidlistCorrupt(1, `unsupported version ${version}`);
  }
  if (uidValidity === 0 || nextUid === 0) throw new UidlistCorrupt(1, 'broken header (UIDVALIDITY or next UID 0)');

  const records: UidlistRecord[] = [];
  // A name seen again replaces its earlier record (Dovecot: "Duplicate file entry", later UID wins).
  const byName = new Map<string, number>();
  let prevUid = 0;
  let lineNo = 1;
  for (;;) {
    const start = pos + 1;
    pos = text.indexOf('\n', start);
    // A line without its '\n' is an append still being written: its file counts as unknown until it is done.
    if (pos < 0) break;
    const line = text.slice(start, pos);
    lineNo++;
    if (line === '') continue;
    let i = 0;
    let uid = 0;
    for (; i < line.length; i++) {
      const c = line.charCodeAt(i);
      if (c < 48 || c > 57) break;
      uid = uid * 10 + (c - 48);
    }
    if (uid === 0 || line.charCodeAt(i) !== 32) throw new UidlistCorrupt(lineNo, 'invalid record');
    if (uid <= prevUid) throw new UidlistCorrupt(lineNo, `UIDs not ordered (${uid} after ${prevUid})`);
    if (uid >= 0xffffffff) throw new UidlistCorrupt(lineNo, 'UID too high');
    prevUid = uid;
    while (line.charCodeAt(i) === 32) i++;
    let ext = '';
    let name: string;
    if (version === 3) {
      const colon = line.indexOf(':', i);
      if (colon < 0 || colon === line.length - 1) throw new UidlistCorrupt(lineNo, 'invalid extended fields');
      ext = line.slice(i, colon).trim();
      name = line.slice(colon + 1);
    } else {
      name = line.slice(i);
    }
    if (name.includes('/')) throw new UidlistCorrupt(lineNo, 'broken file name');
    name = uidlistName(name);
    const record: UidlistRecord = { uid, name, ext };
    const earlier = byName.get(name);
    if (earlier !== undefined) records[earlier] = { uid: 0, name: '', ext: '' }; // tombstone, dropped below
    byName.set(name, records.length);
    records.push(record);
  }
  const live = records.length === byName.size ? records : records.filter((r) => r.uid !== 0);
  return { version, uidValidity, nextUid: Math.max(nextUid, prevUid + 1), guid, headerExt: extra.join(' '), records: live };
}

/** The whole file in version 3 (what Dovecot writes when it recreates the file). */
export function serializeUidlist(list: Pick<Uidlist, 'uidValidity' | 'nextUid' | 'guid' | 'headerExt' | 'records'>): string {
  const guid = list.guid || newMailboxGuid();
  let out = `3 V${list.uidValidity} N${list.nextUid} G${guid}${list.headerExt ? ` ${list.headerExt}` : ''}\n`;
  for (const r of list.records) out += recordLine(r);
  return out;
}

function recordLine(r: UidlistRecord): string {
  return `${r.uid}${r.ext ? ` ${r.ext}` : ''} :${uidlistName(r.name)}\n`;
}

/** Identifies one state of the file: changes whenever Dovecot or postern writes it (appends change the size). */
export function uidlistSignature(st: Stats): string {
  return `${st.ino}:${st.size}:${st.mtimeMs}`;
}

export async function uidlistStat(dir: string): Promise<Stats | undefined> {
  try {
    return statSync(join(dir, UIDLIST_FILE));
  } catch (err) {
    if (errorCode(err) === 'ENOENT') return undefined;
    throw err;
  }
}

/*
 * The file calls below are synchronous, as the store's cheap calls are (src/lib/durable-fs.ts): each costs
 * microseconds of kernel time on a file in the page cache, where the promise API cost a FileHandle and a hand-over
 * to the pool per call (issue 11: the uidlist's and its lock's fs.promises calls were ~8 % of the process under
 * IMAP load). Only what waits for the disk or the journal goes to the pool: the fdatasyncs, and the create of the
 * rewrite's tmp file and its rename.
 */

/** Reads and parses the folder's uidlist; undefined when there is none. Throws UidlistCorrupt. */
export async function readUidlist(dir: string): Promise<{ list: Uidlist; signature: string; size: number } | undefined> {
  const path = join(dir, UIDLIST_FILE);
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    if (errorCode(err) === 'ENOENT') return undefined;
    throw err;
  }
  try {
    // Signature from the open descriptor, so that it describes exactly the bytes read.
    const st = fstatSync(fd);
    const text = readFileSync(fd, 'utf8');
    if (text.length === 0) throw new UidlistCorrupt(1, 'empty file');
    return { list: parseUidlist(text), signature: uidlistSignature(st), size: st.size };
  } finally {
    closeSync(fd);
  }
}

/** Rewrites the whole file (under the lock): tmp, fdatasync, rename. Returns the new signature. */
export async function writeUidlist(dir: string, list: Pick<Uidlist, 'uidValidity' | 'nextUid' | 'guid' | 'headerExt' | 'records'>): Promise<string> {
  const tmp = join(dir, `${UIDLIST_FILE}.tmp`);
  const fd = await openPooled(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC, 0o600);
  try {
    writeAllSync(fd, Buffer.from(serializeUidlist(list), 'utf8'));
    await fdatasyncFd(fd);
  } catch (err) {
    closeSync(fd);
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  closeSync(fd);
  await renamePooled(tmp, join(dir, UIDLIST_FILE));
  return uidlistSignature(statSync(join(dir, UIDLIST_FILE)));
}

/**
 * Appends records (under the lock, UIDs above every UID in the file). Returns the new signature, or undefined when
 * the file is not the one that was read (`expectSize` bytes): the caller then rewrites it instead.
 */
export async function appendUidlist(dir: string, records: UidlistRecord[], expectSize: number): Promise<string | undefined> {
  let fd: number;
  try {
    fd = openSync(join(dir, UIDLIST_FILE), 'r+');
  } catch (err) {
    if (errorCode(err) === 'ENOENT') return undefined;
    throw err;
  }
  try {
    const before = fstatSync(fd);
    if (before.size !== expectSize) return undefined;
    const data = Buffer.from(records.map(recordLine).join(''), 'utf8');
    let offset = 0;
    while (offset < data.length) offset += writeSync(fd, data, offset, data.length - offset, expectSize + offset);
    await fdatasyncFd(fd);
    return uidlistSignature(fstatSync(fd));
  } finally {
    closeSync(fd);
  }
}
