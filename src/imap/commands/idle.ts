/**
 * IDLE (RFC 2177): changes to the selected folder are sent as they happen until the client sends DONE. The idle
 * timeout still applies (clients re-issue IDLE every 29 minutes).
 */
import { bad, expectArgs, type ImapCommand } from '../command.js';

export const idle: ImapCommand = {
  names: ['IDLE'],
  states: ['authenticated', 'selected'],
  async handle(session, cmd) {
    expectArgs(cmd, 0);
    session.continuation('idling');
    session.idling = true;
    try {
      await session.flushChanges(true);
      const line = await session.readLine();
      if (!line) return { sent: true };
      if (line.toString('latin1').trim().toUpperCase() !== 'DONE') throw bad('Expected DONE');
    } finally {
      session.idling = false;
    }
    return { text: 'IDLE terminated' };
  },
};
