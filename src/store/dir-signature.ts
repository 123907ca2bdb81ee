/**
 * "Did anything change in new/ and cur/ since the index last matched them?" answered from two stat(2) calls, for the
 * Maildir sync of maildir-mailbox.ts (issue 11: the readdir of a full sync before every IMAP command).
 *
 * A directory's mtime changes whenever an entry is added, removed or renamed, but only to the kernel's coarse clock
 * (a tick of 1-10 ms; on some file systems a second): two changes within one tick leave the same mtime, so an mtime
 * that is equal to the remembered one proves nothing while its tick may still be running. Dovecot (maildir-sync.c)
 * therefore rescans a directory whose mtime is within MAILDIR_SYNC_SECS of now; so did we, which under imaptest
 * (every folder changed several times a second, mostly by ourselves) meant a readdir for nearly every command.
 *
 * Markers close the tick. After we list a directory (or change it ourselves, under the folder's lock) we set its
 * mtime explicitly (utimensat) to a fresh value from the fine clock, one that no later entry change can reproduce:
 * an entry change sets mtime and ctime both to the same coarse "now" (fs/namei.c: inode_set_mtime_to_ts(dir,
 * inode_set_ctime_current(dir))), while our explicit mtime differs from the ctime the kernel gives the utimensat.
 * So a directory whose (mtime, ctime) is still the marker's has had no entry change since the marker was set, by any
 * process, on any clock tick; and one whose mtime differs from its ctime was last touched by a marker, by us or by
 * another postern process, and one listing after that is complete for good.
 *
 * Whether a file system keeps an explicit nanosecond mtime and gives entry changes mtime == ctime is probed once per
 * device (markersWork); where it does not (coarse timestamps, a server that sets its own times), there are no
 * markers and the old rule alone decides: a signature is trusted only when its newest change is DIR_SETTLE_MS old.
 */
import { mkdirSync, rmdirSync, statSync, unlinkSync, utimesSync, writeFileSync, type BigIntStats } from 'node:fs';
import { join } from 'node:path';

/** A directory change this recent may share its mtime with one still to come (timestamps are kernel ticks). */
export const DIR_SETTLE_MS = 1000;

/** new/ and cur/ of a folder as stat(2) sees them now; undefined when either is missing. */
export interface DirsState {
  /** '<ino>.<mtime ns>.<ctime ns>:' for new/, then the same for cur/: equal means no entry changed, see `trusted`. */
  readonly signature: string;
  readonly new: BigIntStats;
  readonly cur: BigIntStats;
}

export function dirsState(dir: string): DirsState | undefined {
  const n = statSync(join(dir, 'new'), { bigint: true, throwIfNoEntry: false });
  const c = statSync(join(dir, 'cur'), { bigint: true, throwIfNoEntry: false });
  if (!n || !c) return undefined;
  return { signature: `${n.ino}.${n.mtimeNs}.${n.ctimeNs}:${c.ino}.${c.mtimeNs}.${c.ctimeNs}`, new: n, cur: c };
}

/** Whether a listing that found the directory like this (before and after) is complete until its stat changes. */
export function settledOrMarked(st: BigIntStats, now: number, markers: boolean): boolean {
  if (Number(st.mtimeNs / 1_000_000n) <= now - DIR_SETTLE_MS) return true;
  return markers && st.mtimeNs !== st.ctimeNs;
}

let lastMarker = 0n;

/** The fine clock in nanoseconds (microsecond resolution), never below the previous marker of this process. */
function freshMarker(current: bigint): bigint {
  const now = BigInt(Math.round((performance.timeOrigin + performance.now()) * 1000)) * 1000n;
  let m = now > current ? now : current + 1000n;
  if (m <= lastMarker) m = lastMarker + 1000n;
  lastMarker = m;
  return m;
}

/**
 * Sets `path`'s mtime to a fresh marker; returns false when the file system did not keep it as a marker (then the
 * caller must not take the directory for marked). utimes(2) takes the time as a double of seconds (libuv), so the
 * stored value is read back and must be within 2 µs of the one asked for and differ from the ctime.
 */
export function markDir(path: string): boolean {
  try {
    const st = statSync(path, { bigint: true });
    const marker = freshMarker(st.mtimeNs > st.ctimeNs ? st.mtimeNs : st.ctimeNs);
    utimesSync(path, Number(st.atimeNs) / 1e9, Number(marker) / 1e9);
    const back = statSync(path, { bigint: true });
    const off = back.mtimeNs > marker ? back.mtimeNs - marker : marker - back.mtimeNs;
    return back.ino === st.ino && off <= 2000n && back.mtimeNs !== back.ctimeNs;
  } catch {
    return false;
  }
}

const probed = new Map<bigint, boolean>();

/**
 * Whether markers work on the file system of the Maildir folder `dir` (probed once per device, in the folder's
 * tmp/, which is the Maildir's place for scratch files): a new entry gives the directory mtime == ctime, an explicit
 * mtime is kept to the microsecond and differs from the ctime, and the next entry change replaces it.
 */
export function markersWork(dir: string): boolean {
  let dev: bigint;
  try {
    dev = statSync(dir, { bigint: true }).dev;
  } catch {
    return false;
  }
  const known = probed.get(dev);
  if (known !== undefined) return known;
  let ok = false;
  const probe = join(dir, 'tmp', `.postern-mtime-probe.${process.pid}.${Date.now()}`);
  try {
    mkdirSync(probe);
    try {
      writeFileSync(join(probe, 'a'), '');
      const changed = statSync(probe, { bigint: true });
      if (changed.mtimeNs === changed.ctimeNs && markDir(probe)) {
        const marked = statSync(probe, { bigint: true });
        unlinkSync(join(probe, 'a'));
        const after = statSync(probe, { bigint: true });
        ok = after.mtimeNs === after.ctimeNs && after.mtimeNs !== marked.mtimeNs;
      }
    } finally {
      try {
        unlinkSync(join(probe, 'a'));
      } catch {
        // removed above
      }
      rmdirSync(probe);
    }
  } catch {
    ok = false;
  }
  probed.set(dev, ok);
  return ok;
}
