import { AUTHENTICATED, expectArgs, type ManageSieveCommand } from './types.js';

/**
 * RFC 5804 §2.14.1 UNAUTHENTICATE: the session returns to the non-authenticated state (TLS stays) and may
 * authenticate again, e.g. as another user.
 */
export const unauthenticate: ManageSieveCommand = {
  name: 'UNAUTHENTICATE',
  states: AUTHENTICATED,
  run(s, args) {
    expectArgs(args, 0);
    s.loggedOut('unauthenticate');
    s.ok('Unauthenticate completed');
  },
};
