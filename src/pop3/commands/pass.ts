import { login } from '../login.js';
import { AUTHORIZATION, NEED_TLS, type Pop3Command } from './types.js';

/** RFC 1939 §7 PASS. The whole rest of the line is the password: passwords may contain spaces. */
export const pass: Pop3Command = {
  name: 'PASS',
  states: AUTHORIZATION,
  async run(s, args) {
    if (!s.loginAllowed()) return s.err(NEED_TLS);
    const name = s.pendingUser;
    if (name === undefined) return s.err('USER first');
    s.pendingUser = undefined;
    await login(s, name, args, 'USER');
  },
};
