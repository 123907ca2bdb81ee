/**
 * CONDSTORE and QRESYNC (RFC 7162), the parts several commands share: enabling, the view's HIGHESTMODSEQ, the
 * QRESYNC parameter of SELECT/EXAMINE, and VANISHED (EARLIER).
 *
 * MODSEQs come from the store (the Maildir store keeps them in postern-index.db, folder-index.ts; they survive a
 * restart). A store that keeps none makes SELECT answer [NOMODSEQ] (§3.1.2.2) and MODSEQ requests NO.
 */
import type { MessageMeta } from '../store/mailbox.js';
import { bad } from './command.js';
import type { ImapSession, SelectedFolder } from './connection.js';
import { formatSequenceSet, inSequenceSet, parseSequenceSet, type SeqRange, type Token } from './parser.js';

export function condstoreEnabled(session: ImapSession): boolean {
  return session.enabled.has('CONDSTORE');
}

export function qresyncEnabled(session: ImapSession): boolean {
  return session.enabled.has('QRESYNC');
}

/** Whether the selected folder has MODSEQs (a store without them: §3.1.2.2 NOMODSEQ). */
export function hasModseq(sel: SelectedFolder): boolean {
  return sel.highestModseq > 0;
}

/**
 * RFC 7162 §3.1: a CONDSTORE enabling command (ENABLE, SELECT/EXAMINE (CONDSTORE), FETCH MODSEQ / CHANGEDSINCE,
 * STORE UNCHANGEDSINCE, SEARCH MODSEQ, STATUS HIGHESTMODSEQ). The first one issued while a mailbox is selected
 * makes the server send its HIGHESTMODSEQ before the command's own responses: from then on every untagged FETCH
 * carries MODSEQ, and the client needs the starting point.
 */
export function enableCondstore(session: ImapSession): void {
  if (session.enabled.has('CONDSTORE')) return;
  session.enabled.add('CONDSTORE');
  const sel = session.selected;
  if (sel) session.untagged(hasModseq(sel) ? `OK [HIGHESTMODSEQ ${sel.highestModseq}] Highest` : 'OK [NOMODSEQ] No permanent modsequences');
}

/** A mod-sequence value (RFC 7162 §7 mod-sequence-value: 1*DIGIT, up to 2^63-1; 0 allowed where "valzer"). */
export function modseqValue(t: Token | undefined, zeroOk: boolean): number {
  const s = t?.type === 'atom' ? t.value : '';
  if (!/^\d{1,19}$/.test(s)) throw bad('Invalid mod-sequence');
  const n = Number(s);
  if (!Number.isSafeInteger(n) || (!zeroOk && n === 0)) throw bad('Invalid mod-sequence');
  return n;
}

/** §3.1.2.2: after NOMODSEQ, FETCH/SEARCH MODSEQ, CHANGEDSINCE and UNCHANGEDSINCE are rejected with BAD. */
export function requireModseq(session: ImapSession): SelectedFolder {
  const sel = session.selected!;
  if (!hasModseq(sel)) throw bad('Mailbox does not support mod-sequences');
  return sel;
}

/** Raises the view's HIGHESTMODSEQ to what the client has now been told about. */
export function noteModseq(sel: SelectedFolder, modseq: number | undefined): void {
  if (modseq !== undefined && modseq > sel.highestModseq) sel.highestModseq = modseq;
}

/** The MODSEQ fetch data item (§3.1.4.2): a parenthesized list of one value. */
export function modseqItem(meta: MessageMeta): string {
  return `MODSEQ (${meta.modseq ?? 0})`;
}

export interface QresyncParams {
  uidValidity: number;
  modseq: number;
  knownUids?: SeqRange[];
  seqMatch?: { seqs: number[]; uids: number[] };
}

/** Expands a sequence set without '*' into its numbers, ascending (seq-match-data, §3.2.5.2). */
function expand(text: string, what: string): number[] {
  let set: SeqRange[];
  try {
    set = parseSequenceSet(text);
  } catch {
    throw bad(`Invalid ${what}`);
  }
  const out: number[] = [];
  for (const [a, b] of set) {
    if (!Number.isFinite(a) || !Number.isFinite(b) || b - a > 100_000) throw bad(`Invalid ${what}`);
    for (let n = a; n <= b; n++) out.push(n);
  }
  return out.sort((x, y) => x - y);
}

/**
 * The SELECT/EXAMINE parameter list (RFC 4466 §2.1): `(CONDSTORE)` (§3.1.8) and
 * `(QRESYNC (uidvalidity modseq [known-uids [(known-sequence-set known-uid-set)]]))` (§3.2.5).
 */
export function parseSelectParams(session: ImapSession, t: Token | undefined): { condstore: boolean; qresync?: QresyncParams } {
  if (!t) return { condstore: false };
  if (t.type !== 'list') throw bad('Invalid SELECT parameters');
  let condstore = false;
  let qresync: QresyncParams | undefined;
  for (let i = 0; i < t.items.length; i++) {
    const item = t.items[i];
    const name = item.type === 'atom' ? item.value.toUpperCase() : '';
    if (name === 'CONDSTORE') condstore = true;
    else if (name === 'QRESYNC') {
      // §3.2.5: QRESYNC without ENABLE QRESYNC first is a protocol error.
      if (!qresyncEnabled(session)) throw bad('QRESYNC is not enabled');
      const p = t.items[++i];
      if (!p || p.type !== 'list' || p.items.length < 2 || p.items.length > 4) throw bad('Invalid QRESYNC parameters');
      const v = p.items[0];
      if (v.type !== 'atom' || !/^[1-9]\d{0,9}$/.test(v.value) || Number(v.value) > 0xffffffff) throw bad('Invalid UIDVALIDITY');
      qresync = { uidValidity: Number(v.value), modseq: modseqValue(p.items[1], false) };
      let next = 2;
      const k = p.items[next];
      if (k?.type === 'atom') {
        try {
          qresync.knownUids = parseSequenceSet(k.value);
        } catch {
          throw bad('Invalid known-uids');
        }
        next++;
      }
      const m = p.items[next];
      if (m) {
        if (m.type !== 'list' || m.items.length !== 2 || m.items[0].type !== 'atom' || m.items[1].type !== 'atom') throw bad('Invalid seq-match-data');
        const seqs = expand(m.items[0].value, 'known-sequence-set');
        const uids = expand(m.items[1].value, 'known-uid-set');
        if (seqs.length !== uids.length) throw bad('seq-match-data sets differ in size');
        qresync.seqMatch = { seqs, uids };
        next++;
      }
      if (next !== p.items.length) throw bad('Invalid QRESYNC parameters');
    } else throw bad(`Unknown SELECT parameter ${name}`);
  }
  return { condstore, qresync };
}

/**
 * UIDs of `within` (all UIDs when absent) that the client may still believe exist and that are gone, expunged
 * after `modseq` (RFC 7162 §3.2.5.1, §3.2.6 VANISHED (EARLIER)).
 *
 * With the store's expunge history reaching back to `modseq`, that is the history. Without it (the index was
 * rebuilt, the history pruned, a store that keeps none) it is every UID below UIDNEXT in the range that no longer
 * exists (§3.2.5.2: reporting UIDs the client never knew is allowed, missing one is not), narrowed by the client's
 * seq-match-data: when message number s still has the UID u the client gave for it, nothing at or below u went
 * away, because a message only leaves a position by being expunged.
 */
export async function vanishedEarlier(session: ImapSession, modseq: number, within: SeqRange[] | undefined, seqMatch?: QresyncParams['seqMatch']): Promise<number[]> {
  const sel = session.selected!;
  const maxUid = sel.uidNext - 1;
  const inRange = (uid: number) => !within || inSequenceSet(within, uid, maxUid);
  const present = new Set(sel.messages.map((m) => m.uid));
  const history = await session.deps.mailbox.vanishedSince?.(sel.owner, sel.folder, modseq);
  if (history) return history.filter((u) => inRange(u) && !present.has(u));
  let floor = 0;
  if (seqMatch) {
    for (let i = seqMatch.seqs.length - 1; i >= 0; i--) {
      const m = sel.messages[seqMatch.seqs[i] - 1];
      if (m && m.uid === seqMatch.uids[i]) {
        floor = m.uid;
        break;
      }
    }
  }
  const out: number[] = [];
  const ranges: SeqRange[] = within ?? [[1, maxUid]];
  for (const [a0, b0] of ranges) {
    const a = Math.max(a0 === Infinity ? maxUid : a0, floor + 1);
    const b = Math.min(b0 === Infinity ? maxUid : b0, maxUid);
    for (let u = a; u <= b; u++) if (!present.has(u)) out.push(u);
  }
  return [...new Set(out)].sort((x, y) => x - y);
}

/** `* VANISHED (EARLIER) uids` when there are any (§3.2.10). */
export function sendVanishedEarlier(session: ImapSession, uids: number[]): void {
  if (uids.length) session.untagged(`VANISHED (EARLIER) ${formatSequenceSet(uids)}`);
}

/**
 * The SELECT/EXAMINE QRESYNC resync (§3.2.5): with the UIDVALIDITY the client remembers, VANISHED (EARLIER) for
 * what went away and a FETCH (UID FLAGS MODSEQ) for every message changed since its MODSEQ, both within its
 * known UIDs. Another UIDVALIDITY: nothing, the client starts over.
 */
export async function qresyncSelect(session: ImapSession, p: QresyncParams): Promise<void> {
  const sel = session.selected!;
  if (p.uidValidity !== sel.uidValidity || !hasModseq(sel)) return;
  sendVanishedEarlier(session, await vanishedEarlier(session, p.modseq, p.knownUids, p.seqMatch));
  const maxUid = sel.uidNext - 1;
  for (let i = 0; i < sel.messages.length; i++) {
    const m = sel.messages[i];
    if ((m.modseq ?? 0) <= p.modseq) continue;
    if (p.knownUids && !inSequenceSet(p.knownUids, m.uid, maxUid)) continue;
    session.announceKeywords(m.flags);
    session.untagged(`${i + 1} FETCH (UID ${m.uid} FLAGS (${session.flagsOf(m).join(' ')}) ${modseqItem(m)})`);
    await session.drain();
  }
}
