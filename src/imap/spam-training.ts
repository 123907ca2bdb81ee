/**
 * The seed's "moving a message into Junk teaches SpamAssassin spam, moving it out teaches ham". The IMAP server
 * only notices the move; whether this user may teach (the `spamtrainers` group) and how (spamd TELL) is the
 * `learn` hook's business. Learning runs after the reply, one message at a time: a client moving 500 messages
 * must not wait for spamd, and a spamd that is down must not fail the move.
 */
import type { MailboxOwner } from '../store/types.js';
import type { ImapSession } from './connection.js';

export async function junkFolderOf(session: ImapSession, owner: MailboxOwner): Promise<string> {
  const folders = await session.deps.mailbox.listFolders(owner);
  return folders.find((f) => f.specialUse === '\\Junk')?.name ?? 'Junk';
}

/** Called after COPY/MOVE with the destination UIDs; does nothing unless a `learn` hook is configured. */
export async function trainOnTransfer(
  session: ImapSession,
  from: { owner: MailboxOwner; folder: string; shared?: string },
  to: { owner: MailboxOwner; folder: string; shared?: string },
  destUids: number[],
): Promise<void> {
  const learn = session.deps.learn;
  const user = session.user;
  // Shared folders have no Junk: only moves inside the user's own mailbox teach.
  if (!learn || !user || from.shared || to.shared || !destUids.length) return;
  const junk = await junkFolderOf(session, to.owner);
  const intoJunk = to.folder === junk && from.folder !== junk;
  const outOfJunk = from.folder === junk && to.folder !== junk && to.folder !== 'Trash';
  if (!intoJunk && !outOfJunk) return;
  const kind = intoJunk ? 'spam' : 'ham';
  const log = session.deps.log;
  void (async () => {
    let taught = 0;
    let refused = 0;
    for (const uid of destUids) {
      try {
        const message = await session.deps.mailbox.readMessage(to.owner, to.folder, uid);
        if ((await learn(user, kind, message)) === false) refused++;
        else taught++;
      } catch (err) {
        log.warn({ err, user: user.login, kind, uid }, 'imap: spam training failed');
      }
    }
    // Only work done is logged as done: a user outside `spamtrainers` moving mail into Junk taught nothing.
    if (taught) log.info({ user: user.login, kind, messages: taught, client: session.client }, `imap: taught ${kind}`);
    if (refused) log.info({ user: user.login, kind, messages: refused, client: session.client }, `imap: not taught ${kind}: not a member of spamtrainers`);
  })();
}
