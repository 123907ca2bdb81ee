/**
 * RESETKEY (RFC 4467 §8): a new mailbox access key for one mailbox, or for all of the user's mailboxes, so that every
 * URL signed with the old key stops working. Mechanisms, when named, must be ones we have (INTERNAL).
 */
import { bad, mailboxName, no, type ImapCommand } from '../command.js';
import { keyOwner, resolveMailbox, URLAUTH_MECHANISMS } from '../urlauth.js';

export const resetkey: ImapCommand = {
  names: ['RESETKEY'],
  states: ['authenticated', 'selected'],
  async handle(session, cmd) {
    const ctx = session.urlauth;
    if (!ctx) throw bad('Unknown command RESETKEY');
    const user = session.user!;
    if (!cmd.args.length) {
      await ctx.keys.reset(keyOwner(user));
      return { text: 'All keys removed' };
    }
    const name = mailboxName(cmd.args[0]);
    for (const m of cmd.args.slice(1)) {
      const mech = m.type === 'atom' ? m.value.toUpperCase() : '';
      if (!URLAUTH_MECHANISMS.includes(mech)) throw no(`Unsupported URLAUTH mechanism ${mech}`);
    }
    const where = await resolveMailbox(ctx, user, name);
    if (!where) throw no('No such mailbox', 'NONEXISTENT');
    // FolderNotFound from here is NO [NONEXISTENT] (connection.ts).
    const state = await session.deps.mailbox.openFolder(where.owner, where.folder);
    await ctx.keys.reset(keyOwner(user), name, state.uidValidity);
    return { text: 'Key reset' };
  },
};
