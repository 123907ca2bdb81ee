/** SUBSCRIBE and UNSUBSCRIBE (RFC 3501 §6.3.6, §6.3.7): the subscription list LSUB shows. */
import { expectArgs, mailboxName, type ImapCommand } from '../command.js';

export const subscribe: ImapCommand = {
  names: ['SUBSCRIBE', 'UNSUBSCRIBE'],
  states: ['authenticated', 'selected'],
  async handle(session, cmd) {
    expectArgs(cmd, 1);
    const ref = session.resolve(mailboxName(cmd.args[0], session));
    await session.deps.mailbox.subscribe(ref.owner, ref.folder, cmd.command === 'SUBSCRIBE');
  },
};
