/** GETQUOTAROOT (RFC 9208 §4.3): every folder of a mailbox shares one quota root. */
import { expectArgs, mailboxName, type ImapCommand } from '../command.js';
import { encodeMailbox, encodeString } from '../response.js';
import { quotaLine } from './getquota.js';

export const getquotaroot: ImapCommand = {
  names: ['GETQUOTAROOT'],
  states: ['authenticated', 'selected'],
  async handle(session, cmd) {
    expectArgs(cmd, 1);
    const name = mailboxName(cmd.args[0], session);
    const ref = session.resolve(name);
    await session.deps.mailbox.openFolder(ref.owner, ref.folder);
    const root = ref.shared ? session.sharedName(ref.shared, 'INBOX') : '';
    session.write(Buffer.concat([Buffer.from('* QUOTAROOT '), encodeMailbox(name, session), Buffer.from(' '), encodeString(root), Buffer.from('\r\n')]));
    session.write(await quotaLine(session, ref.owner, root));
  },
};
