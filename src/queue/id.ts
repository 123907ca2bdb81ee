/**
 * Queue ids, in the spirit of Postfix's long queue ids (enable_long_queue_ids): the arrival time first so that ids
 * sort by time, then enough entropy that two processes never pick the same one.
 *
 * 16 characters of Crockford base32 (digits and upper-case letters without I, L, O, U): safe as a file name on any
 * file system, case-insensitive ones included, and unambiguous when an admin reads one out over the phone.
 *   9 chars  milliseconds since the epoch (45 bits: good until the year 3084)
 *   3 chars  a per-process counter (15 bits), so ids made in the same millisecond keep their order
 *   4 chars  random (20 bits), so two processes in the same millisecond do not collide; on a node of a cluster
 *            (setQueueIdNode) the first two are a tag of the node instead (10 bits of a hash of its id), so that
 *            ids made on two nodes differ there too (the shared spool also refuses to replace a file, link(2))
 */
import { createHash, randomInt } from 'node:crypto';

const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
const TIME_CHARS = 9;
const COUNTER_CHARS = 3;
const RANDOM_CHARS = 4;
const COUNTER_MAX = 32 ** COUNTER_CHARS;

export const QUEUE_ID_LENGTH = TIME_CHARS + COUNTER_CHARS + RANDOM_CHARS;
export const QUEUE_ID_PATTERN = /^[0-9A-HJKMNP-TV-Z]{16}$/;

/** An id that is not one of ours: a usage error where it came from a person (CLI, admin API). */
export class InvalidQueueIdError extends Error {
  constructor(readonly input: string) {
    super(`not a queue id: ${JSON.stringify(input.length > 40 ? input.slice(0, 40) + '…' : input)}`);
    this.name = 'InvalidQueueIdError';
  }
}

function encode(n: number, chars: number): string {
  let s = '';
  for (let i = 0; i < chars; i++) {
    s = ALPHABET[n % 32] + s;
    n = Math.floor(n / 32);
  }
  return s;
}

let counter = randomInt(COUNTER_MAX);
let nodeTag: string | undefined;

/** Makes this process's ids carry a tag of `nodeId` (state postgres: several nodes write one queue directory). */
export function setQueueIdNode(nodeId: string | undefined): void {
  nodeTag = nodeId === undefined ? undefined : encode(createHash('sha256').update(nodeId).digest().readUInt16BE(0) % 1024, 2);
}
let lastMs = 0;

/** A new queue id. Ids made by one process are strictly increasing. */
export function newQueueId(now: number = Date.now()): string {
  // A clock that steps back must not break the order within this process.
  let ms = Math.max(now, lastMs);
  counter += 1;
  if (counter === COUNTER_MAX) {
    // 32768 ids in one millisecond: borrow the next millisecond so the order still holds.
    counter = 0;
    ms = lastMs + 1;
  }
  lastMs = ms;
  const tail = nodeTag === undefined ? encode(randomInt(32 ** RANDOM_CHARS), RANDOM_CHARS) : nodeTag + encode(randomInt(32 ** 2), 2);
  return encode(ms, TIME_CHARS) + encode(counter, COUNTER_CHARS) + tail;
}

export function isQueueId(s: string): boolean {
  return QUEUE_ID_PATTERN.test(s);
}

/**
 * The id in `input` as typed by a person: surrounding space ignored, any case. Throws InvalidQueueIdError, so
 * nothing that is not an id ever reaches a path.
 */
export function parseQueueId(input: string): string {
  const id = input.trim().toUpperCase();
  if (!isQueueId(id)) throw new InvalidQueueIdError(input);
  return id;
}

/** The arrival time encoded in an id (for display; the envelope's receivedAt is authoritative). */
export function queueIdTime(id: string): Date {
  let ms = 0;
  for (const c of id.slice(0, TIME_CHARS)) ms = ms * 32 + ALPHABET.indexOf(c);
  return new Date(ms);
}
