/**
 * SELECT and EXAMINE (RFC 3501 §6.3.1, §6.3.2): open a folder read-write or read-only and describe it. An IMAP4rev2
 * session (RFC 9051 §6.3.2) gets no RECENT and no UNSEEN code (\Recent is gone, UNSEEN was dropped), a LIST of the
 * mailbox instead, and OK [CLOSED] first when this closes the mailbox that was selected (§7.1).
 */
import { denormalized, expectArgs, mailboxName, type ImapCommand } from '../command.js';
import { sendMailboxList } from './list.js';

export const select: ImapCommand = {
  names: ['SELECT', 'EXAMINE'],
  states: ['authenticated', 'selected'],
  async handle(session, cmd) {
    expectArgs(cmd, 1);
    const name = mailboxName(cmd.args[0], session);
    const readOnly = cmd.command === 'EXAMINE';
    // RFC 9051 §6.3.2: the old mailbox is closed even when the new one cannot be selected.
    if (session.rev2 && session.selected) session.untagged('OK [CLOSED] Previous mailbox closed');
    const sel = await session.select(name, readOnly);
    for (const m of sel.messages) for (const f of m.flags) if (!f.startsWith('\\')) sel.keywords.add(f);
    session.sendFlags();
    session.untagged(`${sel.messages.length} EXISTS`);
    if (!session.rev2) {
      session.untagged(`${sel.recent.size} RECENT`);
      const firstUnseen = sel.messages.findIndex((m) => !m.flags.includes('\\Seen'));
      if (firstUnseen >= 0) session.untagged(`OK [UNSEEN ${firstUnseen + 1}] First unseen`);
    }
    session.untagged(`OK [UIDVALIDITY ${sel.uidValidity}] UIDs valid`);
    session.untagged(`OK [UIDNEXT ${sel.uidNext}] Predicted next UID`);
    if (session.rev2) await sendMailboxList(session, session.resolve(name), denormalized(cmd.args[0], session));
    return { code: readOnly ? 'READ-ONLY' : 'READ-WRITE', text: `${cmd.command} completed` };
  },
};
