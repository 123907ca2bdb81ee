/** NOOP (RFC 3501 §6.1.2): the way clients poll; pending EXISTS/EXPUNGE/FLAGS go out at completion. */
import { expectArgs, type ImapCommand } from '../command.js';

export const noop: ImapCommand = {
  names: ['NOOP'],
  states: ['not-authenticated', 'authenticated', 'selected'],
  async handle(session, cmd) {
    expectArgs(cmd, 0);
    // Delivery into the selected folder may not have been announced by watch (another process wrote the Maildir).
    if (session.selected) session.checkExists = true;
  },
};
