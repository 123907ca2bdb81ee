import { compileOrRefuse, scriptArg } from './script-check.js';
import { AUTHENTICATED, expectArgs, type ManageSieveCommand } from './types.js';

/** RFC 5804 §2.12 CHECKSCRIPT: PUTSCRIPT's verdict without storing anything (no name, no quota). */
export const checkscript: ManageSieveCommand = {
  name: 'CHECKSCRIPT',
  states: AUTHENTICATED,
  run(s, args) {
    expectArgs(args, 1);
    const warnings = compileOrRefuse(s, scriptArg(args[0]));
    if (warnings.length) return s.ok(warnings.join('\r\n'), 'WARNINGS');
    s.ok('Script is valid');
  },
};
