/**
 * STORE and UID STORE (RFC 3501 §6.4.6): FLAGS, +FLAGS, -FLAGS, each with .SILENT; with RFC 7162 §3.1.3's
 * UNCHANGEDSINCE modifier, a message changed after the given MODSEQ is left alone and reported in [MODIFIED].
 */
import { bad, expectArgs, flagList, no, resolveSet, type ImapCommand } from '../command.js';
import { condstoreEnabled, enableCondstore, modseqItem, modseqValue, noteModseq, qresyncEnabled, requireModseq } from '../condstore.js';
import { formatSequenceSet } from '../parser.js';

export const store: ImapCommand = {
  names: ['STORE'],
  states: ['selected'],
  uid: true,
  async handle(session, cmd) {
    expectArgs(cmd, 3, 4);
    const sel = session.selected!;
    let args = cmd.args;
    let unchangedSince: number | undefined;
    if (args.length === 4) {
      const mod = args[1];
      if (mod.type !== 'list' || mod.items.length !== 2 || mod.items[0].type !== 'atom' || mod.items[0].value.toUpperCase() !== 'UNCHANGEDSINCE') throw bad('Invalid STORE modifier');
      unchangedSince = modseqValue(mod.items[1], true);
      args = [args[0], args[2], args[3]];
    }
    const [setArg, itemArg, flagsArg] = args;
    if (setArg.type !== 'atom' || itemArg.type !== 'atom') throw bad('Invalid STORE arguments');
    const m = /^([+-]?)FLAGS(\.SILENT)?$/i.exec(itemArg.value);
    if (!m) throw bad('Invalid STORE item');
    const mode = m[1] === '+' ? 'add' : m[1] === '-' ? 'remove' : 'set';
    const silent = !!m[2];
    // \Recent cannot be changed by the client (RFC 3501 §2.3.2).
    const flags = flagList(flagsArg).filter((f) => f !== '\\Recent');
    const refs = resolveSet(session, setArg.value, cmd.uid);
    if (unchangedSince !== undefined) {
      // RFC 7162 §3.1: UNCHANGEDSINCE is a CONDSTORE enabling modifier.
      requireModseq(session);
      enableCondstore(session);
    }
    if (sel.readOnly) throw no('Mailbox is read-only', 'READ-ONLY');
    if (!refs.length) return;
    const result = await session.deps.mailbox.storeFlags(sel.owner, sel.folder, refs.map((r) => r.meta.uid), mode, flags, unchangedSince === undefined ? undefined : { unchangedSince });
    const modseqs = 'modseqs' in result ? result.modseqs : undefined;
    const modified = new Set('modified' in result ? result.modified : []);
    const condstore = condstoreEnabled(session);
    for (const now of result.values()) session.announceKeywords(now);
    const failed: number[] = [];
    for (const r of refs) {
      if (modified.has(r.meta.uid)) {
        failed.push(cmd.uid ? r.meta.uid : r.seq);
        continue;
      }
      const now = result.get(r.meta.uid);
      if (!now) continue;
      const before = r.meta.modseq;
      r.meta = session.setFlags(r.meta, now);
      const modseq = modseqs?.get(r.meta.uid);
      if (modseq !== undefined) r.meta.modseq = modseq;
      noteModseq(sel, r.meta.modseq);
      const changed = modseq !== undefined && modseq !== before;
      // RFC 7162 §3.1.3: with CONDSTORE the new MODSEQ is reported even for .SILENT (as Dovecot does, only for
      // messages that changed); QRESYNC clients get the UID in every FETCH (§3.2.4).
      if (silent && !(condstore && changed)) continue;
      const items: string[] = [];
      if (!silent) items.push(`FLAGS (${session.flagsOf(r.meta).join(' ')})`);
      if (cmd.uid || (condstore && qresyncEnabled(session))) items.push(`UID ${r.meta.uid}`);
      if (condstore && r.meta.modseq !== undefined) items.push(modseqItem(r.meta));
      session.untagged(`${r.seq} FETCH (${items.join(' ')})`);
    }
    // RFC 7162 §3.1.3: MODIFIED lists message numbers for STORE, UIDs for UID STORE.
    if (failed.length) return { code: `MODIFIED ${formatSequenceSet(failed.sort((a, b) => a - b))}`, text: 'Conditional STORE failed' };
  },
};
