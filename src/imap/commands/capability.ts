/** CAPABILITY (RFC 3501 §6.1.1): what this connection offers now (STARTTLS and LOGINDISABLED depend on TLS). */
import { expectArgs, type ImapCommand } from '../command.js';

export const capability: ImapCommand = {
  names: ['CAPABILITY'],
  states: ['not-authenticated', 'authenticated', 'selected'],
  async handle(session, cmd) {
    expectArgs(cmd, 0);
    session.untagged(`CAPABILITY ${session.capabilities().join(' ')}`);
  },
};
