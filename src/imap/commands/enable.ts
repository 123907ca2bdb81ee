/**
 * ENABLE (RFC 5161): turns on the extensions that change what the server sends. The answer lists those this command
 * turned on; one already on, unknown, or not allowed now is left out (RFC 5161 §3.1), never BAD.
 */
import { expectArgs, type ImapCommand } from '../command.js';
import { enableCondstore } from '../condstore.js';
import type { ImapSession } from '../connection.js';

interface Enableable {
  /** As CAPABILITY spells it, which is how ENABLED names it. */
  name: string;
  /** Whether it can be turned on now. */
  allowed(session: ImapSession): boolean;
  /** What turning it on does beyond being listed in `session.enabled`. */
  enable?(session: ImapSession): void;
}

/** RFC 6855 §3 and RFC 9051 §6.3.1: mailbox names change encoding, so only in the authenticated state (before a
 * mailbox is selected), not halfway through a session's view of one. */
const beforeSelect = (s: ImapSession) => s.state === 'authenticated';
const always = () => true;

/** What can be enabled, by upper-case name. */
const ENABLEABLE: ReadonlyMap<string, Enableable> = new Map([
  ['UTF8=ACCEPT', { name: 'UTF8=ACCEPT', allowed: beforeSelect }],
  // RFC 9051 §6.3.1 / Appendix E: the session follows RFC 9051 instead of RFC 3501 from here on.
  ['IMAP4REV2', { name: 'IMAP4rev2', allowed: beforeSelect }],
  // RFC 7162 §3.1, §3.2.3: also in the selected state (then OK [HIGHESTMODSEQ] first); QRESYNC implies CONDSTORE.
  ['CONDSTORE', { name: 'CONDSTORE', allowed: always, enable: enableCondstore }],
  ['QRESYNC', { name: 'QRESYNC', allowed: always, enable: enableCondstore }],
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
      ext.enable?.(session);
      session.enabled.add(name);
      turnedOn.push(ext.name);
    }
    session.untagged(`ENABLED${turnedOn.map((c) => ' ' + c).join('')}`);
  },
};
