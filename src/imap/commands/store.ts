/** STORE and UID STORE (RFC 3501 §6.4.6): FLAGS, +FLAGS, -FLAGS, each with .SILENT. */
import { bad, expectArgs, flagList, no, resolveSet, type ImapCommand } from '../command.js';

export const store: ImapCommand = {
  names: ['STORE'],
  states: ['selected'],
  uid: true,
  async handle(session, cmd) {
    expectArgs(cmd, 3, 3);
    const sel = session.selected!;
    const [setArg, itemArg, flagsArg] = cmd.args;
    if (setArg.type !== 'atom' || itemArg.type !== 'atom') throw bad('Invalid STORE arguments');
    const m = /^([+-]?)FLAGS(\.SILENT)?$/i.exec(itemArg.value);
    if (!m) throw bad('Invalid STORE item');
    const mode = m[1] === '+' ? 'add' : m[1] === '-' ? 'remove' : 'set';
    const silent = !!m[2];
    // \Recent cannot be changed by the client (RFC 3501 §2.3.2).
    const flags = flagList(flagsArg).filter((f) => f !== '\\Recent');
    const refs = resolveSet(session, setArg.value, cmd.uid);
    if (sel.readOnly) throw no('Mailbox is read-only', 'READ-ONLY');
    if (!refs.length) return;
    const result = await session.deps.mailbox.storeFlags(sel.owner, sel.folder, refs.map((r) => r.meta.uid), mode, flags);
    for (const now of result.values()) session.announceKeywords(now);
    for (const r of refs) {
      const now = result.get(r.meta.uid);
      if (!now) continue;
      session.setFlags(r.meta, now);
      if (!silent) session.untagged(`${r.seq} FETCH (FLAGS (${session.flagsOf(r.meta).join(' ')})${cmd.uid ? ` UID ${r.meta.uid}` : ''})`);
    }
  },
};
