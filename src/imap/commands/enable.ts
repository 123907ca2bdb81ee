/** ENABLE (RFC 5161): we have no extension that needs enabling yet, so the answer lists none. */
import { expectArgs, type ImapCommand } from '../command.js';

export const enable: ImapCommand = {
  names: ['ENABLE'],
  states: ['authenticated', 'selected'],
  async handle(session, cmd) {
    expectArgs(cmd, 1, 100);
    session.untagged('ENABLED');
  },
};
