/** NAMESPACE (RFC 2342): the personal namespace, and "Shared/" when the user is in groups with shared folders. */
import { expectArgs, SHARED_PREFIX, type ImapCommand } from '../command.js';

export const namespace: ImapCommand = {
  names: ['NAMESPACE'],
  states: ['authenticated', 'selected'],
  async handle(session, cmd) {
    expectArgs(cmd, 0);
    session.untagged(`NAMESPACE (("" "/")) NIL ${session.sharedGroups.length ? `(("${SHARED_PREFIX}/" "/"))` : 'NIL'}`);
  },
};
