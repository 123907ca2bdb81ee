/** LOGOUT (RFC 3501 §6.1.3): BYE, then the tagged OK, then the connection closes. */
import { expectArgs, type ImapCommand } from '../command.js';

export const logout: ImapCommand = {
  names: ['LOGOUT'],
  states: ['not-authenticated', 'authenticated', 'selected'],
  async handle(session, cmd) {
    expectArgs(cmd, 0);
    session.untagged('BYE Logging out');
    session.unselect();
    session.state = 'logout';
    return { text: 'Logout completed' };
  },
};
