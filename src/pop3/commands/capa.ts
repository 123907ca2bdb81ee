import { ANY_STATE, type Pop3Command } from './types.js';

/**
 * RFC 2449 CAPA. USER and SASL are listed only when a login would be accepted now: before STLS on the plain port
 * they are not (unless mailbox.allowUnencrypted), which tells clients to upgrade first (RFC 2595 §4).
 */
export const capa: Pop3Command = {
  name: 'CAPA',
  states: ANY_STATE,
  run(s) {
    const caps = ['TOP', 'UIDL', 'RESP-CODES', 'AUTH-RESP-CODE', 'PIPELINING'];
    if (s.state === 'authorization') {
      if (!s.secure) caps.push('STLS');
      // GSSAPI (RFC 4752) under the same TLS rule as passwords, and only while its keytab is readable.
      if (s.loginAllowed()) caps.push('USER', s.ctx.auth.gssapiAvailable?.() === true ? 'SASL PLAIN GSSAPI' : 'SASL PLAIN');
    }
    caps.push('IMPLEMENTATION postern');
    s.send('+OK capability list follows');
    for (const c of caps) s.send(c);
    s.send('.');
  },
};
