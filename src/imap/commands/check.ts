/** CHECK (RFC 3501 §6.4.1): a checkpoint; our store writes through, so it is a NOOP that looks for new mail. */
import { expectArgs, type ImapCommand } from '../command.js';

export const check: ImapCommand = {
  names: ['CHECK'],
  states: ['selected'],
  async handle(session, cmd) {
    expectArgs(cmd, 0);
    session.checkExists = true;
  },
};
