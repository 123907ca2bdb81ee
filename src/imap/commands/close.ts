/** CLOSE (RFC 3501 §6.4.2): silently expunges \Deleted messages (unless read-only) and leaves the selected state. */
import { expectArgs, type ImapCommand } from '../command.js';
import { expungeDeleted } from './expunge.js';

export const close: ImapCommand = {
  names: ['CLOSE'],
  states: ['selected'],
  async handle(session, cmd) {
    expectArgs(cmd, 0);
    if (!session.selected!.readOnly) await expungeDeleted(session, undefined, true);
    session.unselect();
  },
};
