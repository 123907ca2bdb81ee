import { ANY_STATE, expectArgs, type ManageSieveCommand } from './types.js';

/** RFC 5804 §2.4 CAPABILITY: the same lines as the greeting, for the state the session is in now. */
export const capability: ManageSieveCommand = {
  name: 'CAPABILITY',
  states: ANY_STATE,
  run(s, args) {
    expectArgs(args, 0);
    s.sendCapabilities();
    s.ok('Capability completed');
  },
};
