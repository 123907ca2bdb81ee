/**
 * ENABLE (RFC 5161): turns on the extensions that change what the server sends. The answer lists those this command
 * turned on; one already on, unknown, or not allowed now is left out (RFC 5161 §3.1), never BAD.
 */
import { expectArgs, type ImapCommand } from '../command.js';
import type { ImapSession } from '../connection.js';

interface Enableable {
  /** As CAPABILITY spells it, which is how ENABLED names it. */
  name: string;
  /** Whether it can be turned on now. */
  allowed(session: ImapSession): boolean;
}

/** RFC 6855 §3 and RFC 9051 §6.3.1: mailbox names change encoding, so only in the authenticated state (before a
 * mailbox is selected), not halfway through a session's view of one. */
const beforeSelect = (s: ImapSession) => s.state === 'authenticated';

/** What can be enabled, by upper-case name. */
const ENABLEABLE: ReadonlyMap<string, Enableable> = new Map([
  ['UTF8=ACCEPT', { name: 'UTF8=ACCEPT', allowed: beforeSelect }],
  // RFC 9051 §6.3.1 / Appendix E: the session follows RFC 9051 instead of RFC 3501 from here on.
  ['IMAP4REV2', { name: 'IMAP4rev2', allowed: beforeSelect }],
]);

export const enable: ImapCommand = {
  names: ['ENABLE'],
  states: ['authenticated', 'selected'],
  async handle(session, cmd) {
    expectArgs(cmd, 1, 100);
    const turnedOn: string[] = [];
    for (const arg of cmd.args) {
      if (arg.type !== 'atom') continue;
      const name = arg.value.toUpperCase();
      const ext = ENABLEABLE.get(name);
      if (!ext || session.enabled.has(name) || !ext.allowed(session)) continue;
      session.enabled.add(name);
      turnedOn.push(ext.name);
    }
    session.untagged(`ENABLED${turnedOn.map((c) => ' ' + c).join('')}`);
  },
};
