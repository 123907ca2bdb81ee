/**
 * ENABLE (RFC 5161). CONDSTORE and QRESYNC (RFC 7162 §3.1, §3.2.3; QRESYNC implies CONDSTORE). `* ENABLED` lists
 * what this command turned on; unknown or already enabled names are left out.
 */
import { expectArgs, type ImapCommand } from '../command.js';
import { enableCondstore } from '../condstore.js';

export const enable: ImapCommand = {
  names: ['ENABLE'],
  states: ['authenticated', 'selected'],
  async handle(session, cmd) {
    expectArgs(cmd, 1, 100);
    const turned: string[] = [];
    for (const a of cmd.args) {
      const name = a.type === 'atom' ? a.value.toUpperCase() : '';
      if (name === 'CONDSTORE' || name === 'QRESYNC') {
        if (!session.enabled.has(name)) turned.push(name);
        enableCondstore(session);
        session.enabled.add(name);
      }
    }
    session.untagged(`ENABLED${turned.length ? ' ' + [...new Set(turned)].join(' ') : ''}`);
  },
};
