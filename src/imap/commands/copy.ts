/** COPY and UID COPY (RFC 3501 §6.4.7) with COPYUID (RFC 4315); over quota is NO [OVERQUOTA]. */
import { bad, expectArgs, mailboxName, resolveSet, sameOwner, type ImapCommand } from '../command.js';
import { formatSequenceSet } from '../parser.js';
import { trainOnTransfer } from '../spam-training.js';

export const copy: ImapCommand = {
  names: ['COPY'],
  states: ['selected'],
  uid: true,
  async handle(session, cmd) {
    expectArgs(cmd, 2);
    if (cmd.args[0].type !== 'atom') throw bad('Invalid sequence set');
    const refs = resolveSet(session, cmd.args[0].value, cmd.uid);
    const to = session.resolve(mailboxName(cmd.args[1], session));
    const sel = session.selected!;
    if (!refs.length) return { text: 'Nothing to copy' };
    const { uidValidity, mapping } = await session.deps.mailbox.copy(sel.owner, sel.folder, refs.map((r) => r.meta.uid), to.folder, { toOwner: to.owner });
    if (sameOwner(to.owner, sel.owner) && to.folder === sel.folder) session.checkExists = true;
    if (!mapping.length) return;
    for (const [from] of mapping) sel.copied.add(from);
    mapping.sort((a, b) => a[0] - b[0]);
    await trainOnTransfer(session, sel, to, mapping.map((m) => m[1]));
    return { code: `COPYUID ${uidValidity} ${formatSequenceSet(mapping.map((m) => m[0]))} ${formatSequenceSet(mapping.map((m) => m[1]))}` };
  },
};
