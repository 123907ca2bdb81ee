/** LISTRIGHTS (RFC 4314 §3.4): nothing is always granted; each right can only come from AD membership. */
import { astring, expectArgs, mailboxName, type ImapCommand } from '../command.js';
import { encodeMailbox, encodeString } from '../response.js';

export const listrights: ImapCommand = {
  names: ['LISTRIGHTS'],
  states: ['authenticated', 'selected'],
  async handle(session, cmd) {
    expectArgs(cmd, 2);
    const name = mailboxName(cmd.args[0], session);
    const identifier = astring(cmd.args[1], 'identifier');
    const ref = session.resolve(name);
    await session.deps.mailbox.openFolder(ref.owner, ref.folder);
    session.write(
      Buffer.concat([Buffer.from('* LISTRIGHTS '), encodeMailbox(name, session), Buffer.from(' '), encodeString(identifier), Buffer.from(' "" l r s w i p k x t e a\r\n')]),
    );
  },
};
