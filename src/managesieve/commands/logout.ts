import { ANY_STATE, expectArgs, type ManageSieveCommand } from './types.js';

/** RFC 5804 §2.3 LOGOUT: the server answers OK, then closes the connection. */
export const logout: ManageSieveCommand = {
  name: 'LOGOUT',
  states: ANY_STATE,
  run(s, args) {
    expectArgs(args, 0);
    s.ok('Logout completed');
    s.end('logout');
  },
};
