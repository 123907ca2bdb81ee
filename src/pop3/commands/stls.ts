import { AUTHORIZATION, type Pop3Command } from './types.js';

/** RFC 2595 §4: only in AUTHORIZATION, only once. */
export const stls: Pop3Command = {
  name: 'STLS',
  states: AUTHORIZATION,
  run(s) {
    if (s.secure) return s.err('TLS is already active');
    s.startTls();
  },
};
