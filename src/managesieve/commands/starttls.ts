import { badArgs, expectArgs, NON_AUTHENTICATED, type ManageSieveCommand } from './types.js';

/** RFC 5804 §2.2 STARTTLS: only before authentication and only once; the session does the rest (session.ts). */
export const starttls: ManageSieveCommand = {
  name: 'STARTTLS',
  states: NON_AUTHENTICATED,
  run(s, args) {
    expectArgs(args, 0);
    if (s.secure) throw badArgs('TLS is already active');
    s.startTls();
  },
};
