/**
 * MOVE and UID MOVE (RFC 6851): COPYUID goes in an untagged OK before the EXPUNGE responses (§4.3), so the
 * client learns the new UIDs before the old sequence numbers disappear. A MOVE into the selected mailbox itself is
 * allowed (§3.3 does not forbid it, Dovecot does it): the messages get new UIDs, and the EXISTS for them follows
 * the EXPUNGEs.
 */
import { bad, expectArgs, mailboxName, no, resolveSet, sameOwner, type ImapCommand } from '../command.js';
import { formatSequenceSet } from '../parser.js';
import { trainOnTransfer } from '../spam-training.js';

export const move: ImapCommand = {
  names: ['MOVE'],
  states: ['selected'],
  uid: true,
  async handle(session, cmd) {
    expectArgs(cmd, 2);
    if (cmd.args[0].type !== 'atom') throw bad('Invalid sequence set');
    const refs = resolveSet(session, cmd.args[0].value, cmd.uid);
    const to = session.resolve(mailboxName(cmd.args[1], session));
    const sel = session.selected!;
    if (sel.readOnly) throw no('Mailbox is read-only', 'READ-ONLY');
    if (!refs.length) return { text: 'Nothing to move' };
    const uids = refs.map((r) => r.meta.uid);
    const { uidValidity, mapping } = await session.deps.mailbox.copy(sel.owner, sel.folder, uids, to.folder, { move: true, toOwner: to.owner });
    if (sameOwner(to.owner, sel.owner) && to.folder === sel.folder) session.checkExists = true;
    mapping.sort((a, b) => a[0] - b[0]);
    if (mapping.length) {
      session.untagged(`OK [COPYUID ${uidValidity} ${formatSequenceSet(mapping.map((m) => m[0]))} ${formatSequenceSet(mapping.map((m) => m[1]))}] Moved`);
    }
    session.applyExpunge(mapping.length ? mapping.map((m) => m[0]) : uids, false);
    await trainOnTransfer(session, sel, to, mapping.map((m) => m[1]));
  },
};
