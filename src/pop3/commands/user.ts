import { AUTHORIZATION, NEED_TLS, type Pop3Command } from './types.js';

/** RFC 1939 §7 USER. */
export const user: Pop3Command = {
  name: 'USER',
  states: AUTHORIZATION,
  run(s, args) {
    if (!s.loginAllowed()) return s.err(NEED_TLS);
    const name = args.trim();
    if (name === '') return s.err('USER needs a name');
    s.pendingUser = name;
    s.ok('send PASS');
  },
};
