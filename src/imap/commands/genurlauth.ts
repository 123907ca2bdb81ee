/**
 * GENURLAUTH (RFC 4467 §7): signs URL rumps of the user's own messages with the mailbox access key (INTERNAL
 * mechanism), creating the key on first use; answers `* GENURLAUTH url-full...` in the order asked.
 */
import { bad, no, type ImapCommand } from '../command.js';
import { TempFailure } from '../../lib/errors.js';
import { parseImapUrl, UrlError } from '../imap-url.js';
import { tokenText } from '../parser.js';
import { encodeString } from '../response.js';
import { keyOwner, resolveMailbox, URLAUTH_MECHANISMS, urlauthToken } from '../urlauth.js';

export const genurlauth: ImapCommand = {
  names: ['GENURLAUTH'],
  states: ['authenticated', 'selected'],
  async handle(session, cmd) {
    const ctx = session.urlauth;
    if (!ctx) throw bad('Unknown command GENURLAUTH');
    if (cmd.args.length < 2 || cmd.args.length % 2) throw bad('Expected URL and mechanism pairs');
    const out: string[] = [];
    for (let i = 0; i < cmd.args.length; i += 2) {
      const text = tokenText(cmd.args[i]);
      const mech = cmd.args[i + 1].type === 'atom' ? (cmd.args[i + 1] as { value: string }).value.toUpperCase() : undefined;
      if (text === undefined || !mech) throw bad('Expected URL and mechanism');
      let url;
      try {
        url = parseImapUrl(text, 'rump');
      } catch (err) {
        if (err instanceof UrlError) throw bad(`Invalid URL: ${err.message}`);
        throw err;
      }
      if (!URLAUTH_MECHANISMS.includes(mech)) throw no(`Unsupported URLAUTH mechanism ${mech}`);
      // §7: only the owner of the mailbox may sign URLs for it (the URL's user is the logged-in user).
      const user = session.user!;
      const owner = await ctx.findUser(url.user).catch((err: unknown) => {
        if (err instanceof TempFailure) throw no('Temporary failure, try again later', 'UNAVAILABLE');
        throw err;
      });
      if (!owner || owner.dn.toLowerCase() !== user.dn.toLowerCase()) throw no('The URL is not for your mailbox');
      if (!ctx.hosts(url.host)) throw no('The URL is not for this server');
      const where = await resolveMailbox(ctx, user, url.mailbox);
      if (!where) throw no('No such mailbox', 'NONEXISTENT');
      const state = await session.deps.mailbox.openFolder(where.owner, where.folder);
      if (url.uidValidity !== undefined && url.uidValidity !== state.uidValidity) throw no('UIDVALIDITY does not match the mailbox');
      const key = await ctx.keys.key(keyOwner(user), url.mailbox, state.uidValidity, true);
      out.push(`${url.rump}:INTERNAL:${urlauthToken(key!, url.rump)}`);
    }
    session.write(Buffer.concat([Buffer.from('* GENURLAUTH'), ...out.flatMap((u) => [Buffer.from(' '), encodeString(u)]), Buffer.from('\r\n')]));
  },
};
