/** UNSELECT (RFC 3691): leaves the selected state without expunging. */
import { expectArgs, type ImapCommand } from '../command.js';

export const unselect: ImapCommand = {
  names: ['UNSELECT'],
  states: ['selected'],
  async handle(session, cmd) {
    expectArgs(cmd, 0);
    session.unselect();
  },
};
