/**
 * What FETCH rendered from a message, kept in this process so the next FETCH of it does not open and parse the file
 * again (issue 11): its header block (BODY[HEADER], BODY[HEADER.FIELDS …], RFC822.HEADER) and the encoded ENVELOPE,
 * BODYSTRUCTURE and BODY. imaptest's FETCHes ask for BODY and header fields of up to 100 messages at a time, and
 * before this every one of them read and MIME-parsed each message file (profiled: file reads and parseMime were most
 * of FETCH's own time); the folder index caches ENVELOPE and BODYSTRUCTURE only, one SQLite row per message.
 *
 * Safe because a message never changes under its UID: RFC 3501 §2.3.1.1 (RFC 9051 §2.3.1.1) — UIDVALIDITY plus UID
 * name one message for good, in any process. The key has both; the entry also remembers the message's size and
 * internal date and is ignored when they differ, which covers UIDVALIDITY values two processes might pick in the
 * same second. Bounded by bytes (least recently used first out) so that 10,000 idle sessions pay nothing and a
 * large FETCH costs a bounded amount; headers larger than MAX_HEADER are not kept.
 */
import { LRUCache } from 'lru-cache';
import type { MessageMeta } from '../store/mailbox.js';
import type { MailboxOwner } from '../store/types.js';

export interface MemoEntry {
  /** The header block including its blank line (MimeNode.header), a copy of the file's bytes. */
  header?: Buffer;
  envelope?: Buffer;
  bodystructure?: Buffer;
  /** BODY: BODYSTRUCTURE without extension data (RFC 3501 §7.4.2). */
  body?: Buffer;
}

interface Stored extends MemoEntry {
  size: number;
  date: number;
  bytes: number;
}

/** Default bound of the process's memo: about 8,000 messages of imaptest's kind (1 KiB of header and structures). */
export const MEMO_BYTES = 8 * 1024 * 1024;
/** A header block larger than this is read from the file each time (spam-laden or list mail: rare, and big). */
export const MAX_HEADER = 16 * 1024;
/** Per entry beyond its buffers: the key string, the objects, the cache slot (measured roughly; it only sizes the bound). */
const ENTRY_OVERHEAD = 200;
/** Per kept value: its Buffer and ArrayBuffer objects. */
const VALUE_OVERHEAD = 120;

export class MessageMemo {
  /**
   * lru-cache bounds the entries by their `bytes` (maxSize + sizeCalculation): an entry that grows is set again, so
   * its size is counted anew and the least recently used go first. No `max`: lru-cache would allocate its arrays for
   * that many entries up front, which 10,000 idle sessions' processes need not hold.
   */
  private readonly map?: LRUCache<string, Stored>;

  constructor(limit = MEMO_BYTES) {
    if (limit > 0) this.map = new LRUCache<string, Stored>({ maxSize: limit, sizeCalculation: (e) => e.bytes });
  }

  static key(owner: MailboxOwner, folder: string, uidValidity: number, uid: number): string {
    const who = owner.kind === 'user' ? `u${owner.guid ?? owner.login.toLowerCase()}` : `g${owner.group.toLowerCase()}`;
    return `${who}\0${folder}\0${uidValidity}\0${uid}`;
  }

  /** The entry for the message, when it is still the same message (size and internal date agree). */
  get(key: string, meta: MessageMeta): MemoEntry | undefined {
    const e = this.map?.get(key);
    if (!e) return undefined;
    if (e.size !== meta.size || e.date !== meta.internalDate.getTime()) {
      this.map!.delete(key);
      return undefined;
    }
    return e;
  }

  /** Adds what is new in `add` to the message's entry (values already there are the same bytes and stay). */
  put(key: string, meta: MessageMeta, add: MemoEntry): void {
    if (!this.map) return;
    let e = this.map.get(key);
    if (e && (e.size !== meta.size || e.date !== meta.internalDate.getTime())) e = undefined;
    e = e ? { ...e } : { size: meta.size, date: meta.internalDate.getTime(), bytes: ENTRY_OVERHEAD + key.length };
    if (add.header && !e.header && add.header.length <= MAX_HEADER) {
      e.header = own(add.header);
      e.bytes += e.header.length + VALUE_OVERHEAD;
    }
    for (const k of ['envelope', 'bodystructure', 'body'] as const) {
      const v = add[k];
      if (v && !e[k]) {
        e[k] = own(v);
        e.bytes += v.length + VALUE_OVERHEAD;
      }
    }
    this.map.set(key, e);
  }

  get size(): number {
    return this.map?.size ?? 0;
  }

  get usedBytes(): number {
    return this.map?.calculatedSize ?? 0;
  }
}

/**
 * A copy in memory of its own: a subarray of the message would keep the whole message alive, and a small Buffer
 * (Buffer.from, concat) is a slice of Node's shared 8 KiB pool, which it would pin — 8,000 entries could then hold
 * 64 MiB instead of the bound.
 */
function own(b: Buffer): Buffer {
  const copy = Buffer.allocUnsafeSlow(b.length);
  b.copy(copy);
  return copy;
}

/** The process's memo, shared by its sessions (every session of a mailbox sees the same messages). */
export const messageMemo = new MessageMemo();
