/**
 * SELECT and EXAMINE (RFC 3501 §6.3.1, §6.3.2): open a folder read-write or read-only and describe it. With the
 * RFC 7162 parameters: (CONDSTORE) enables CONDSTORE (§3.1.8), (QRESYNC (...)) resynchronises (§3.2.5). An IMAP4rev2
 * session (RFC 9051 §6.3.2) gets no RECENT and no UNSEEN code (\Recent is gone, UNSEEN was dropped) and a LIST of
 * the mailbox instead.
 */
import { denormalized, expectArgs, mailboxName, type ImapCommand } from '../command.js';
import { enableCondstore, hasModseq, parseSelectParams, qresyncSelect } from '../condstore.js';
import { sendMailboxList } from './list.js';

export const select: ImapCommand = {
  names: ['SELECT', 'EXAMINE'],
  states: ['authenticated', 'selected'],
  async handle(session, cmd) {
    expectArgs(cmd, 1, 2);
    const name = mailboxName(cmd.args[0], session);
    const params = parseSelectParams(session, cmd.args[1]);
    const readOnly = cmd.command === 'EXAMINE';
    // RFC 7162 §3.2.11: the boundary between the old mailbox's responses and the new one's, sent even when the new
    // SELECT fails (the old mailbox is closed either way, RFC 3501 §6.3.1; RFC 9051 §7.1 for IMAP4rev2).
    if (session.selected) {
      session.unselect();
      session.untagged('OK [CLOSED] Previous mailbox closed');
    }
    if (params.condstore) enableCondstore(session);
    const sel = await session.select(name, readOnly);
    // From the folder's summary (SelectedFolder.opened), not from the messages: the view reads those on first use.
    for (const k of sel.opened.keywords) sel.keywords.add(k);
    session.sendFlags();
    session.untagged(`${sel.opened.exists} EXISTS`);
    if (!session.rev2) {
      session.untagged(`${sel.recent.size} RECENT`);
      if (sel.opened.firstUnseen > 0) session.untagged(`OK [UNSEEN ${sel.opened.firstUnseen}] First unseen`);
    }
    session.untagged(`OK [UIDVALIDITY ${sel.uidValidity}] UIDs valid`);
    session.untagged(`OK [UIDNEXT ${sel.uidNext}] Predicted next UID`);
    if (session.rev2) await sendMailboxList(session, session.resolve(name), denormalized(cmd.args[0], session));
    // RFC 7162 §3.1.2.1 / §3.1.2.2: every successful SELECT/EXAMINE says whether the folder has MODSEQs.
    session.untagged(hasModseq(sel) ? `OK [HIGHESTMODSEQ ${sel.highestModseq}] Highest` : 'OK [NOMODSEQ] No permanent modsequences');
    if (params.qresync) await qresyncSelect(session, params.qresync);
    return { code: readOnly ? 'READ-ONLY' : 'READ-WRITE', text: `${cmd.command} completed` };
  },
};
