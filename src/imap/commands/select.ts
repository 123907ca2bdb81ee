/** SELECT and EXAMINE (RFC 3501 §6.3.1, §6.3.2): open a folder read-write or read-only and describe it. */
import { expectArgs, mailboxName, type ImapCommand } from '../command.js';

export const select: ImapCommand = {
  names: ['SELECT', 'EXAMINE'],
  states: ['authenticated', 'selected'],
  async handle(session, cmd) {
    expectArgs(cmd, 1);
    const name = mailboxName(cmd.args[0], session);
    const readOnly = cmd.command === 'EXAMINE';
    const sel = await session.select(name, readOnly);
    for (const m of sel.messages) for (const f of m.flags) if (!f.startsWith('\\')) sel.keywords.add(f);
    session.sendFlags();
    session.untagged(`${sel.messages.length} EXISTS`);
    session.untagged(`${sel.recent.size} RECENT`);
    const firstUnseen = sel.messages.findIndex((m) => !m.flags.includes('\\Seen'));
    if (firstUnseen >= 0) session.untagged(`OK [UNSEEN ${firstUnseen + 1}] First unseen`);
    session.untagged(`OK [UIDVALIDITY ${sel.uidValidity}] UIDs valid`);
    session.untagged(`OK [UIDNEXT ${sel.uidNext}] Predicted next UID`);
    return { code: readOnly ? 'READ-ONLY' : 'READ-WRITE', text: `${cmd.command} completed` };
  },
};
