/** NOTIFY (RFC 5465 §3): NOTIFY SET [STATUS] event-groups, NOTIFY NONE; what it does is in ../notify.ts. */
import type { ImapCommand } from '../command.js';
import { parseNotify } from '../notify.js';

export const notify: ImapCommand = {
  names: ['NOTIFY'],
  states: ['authenticated', 'selected'],
  async handle(session, cmd) {
    // Everything is checked before the old NOTIFY SET is replaced: a refused one leaves it in force.
    await session.setNotify(parseNotify(cmd.args, session));
  },
};
