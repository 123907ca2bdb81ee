import { codeString } from '../response.js';
import { ANY_STATE, expectArgs, stringArg, type ManageSieveCommand } from './types.js';

/** RFC 5804 §2.13 NOOP: with a string argument the OK carries it back in a TAG response code (§1.3). */
export const noop: ManageSieveCommand = {
  name: 'NOOP',
  states: ANY_STATE,
  run(s, args) {
    expectArgs(args, 0, 1);
    if (args.length === 0) return s.ok('NOOP completed');
    s.ok('Done', `TAG ${codeString(stringArg(args[0], 'tag'))}`);
  },
};
