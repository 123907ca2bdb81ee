/**
 * STARTTLS (RFC 3501 §6.2.1). The reader stopped at this command, so anything the client pipelined after it is
 * already gone (DESIGN.md §6 "STARTTLS resets the world"); the handshake follows the tagged OK.
 */
import { bad, expectArgs, type ImapCommand } from '../command.js';

export const starttls: ImapCommand = {
  names: ['STARTTLS'],
  states: ['not-authenticated'],
  async handle(session, cmd) {
    expectArgs(cmd, 0);
    if (session.secure) throw bad('Already using TLS');
    if (!session.deps.secureContext) throw bad('TLS not available');
    await session.startTls(cmd.tag);
    return { sent: true };
  },
};
