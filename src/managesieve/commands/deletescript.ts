import { AUTHENTICATED, expectArgs, storage, stringArg, type ManageSieveCommand } from './types.js';

/** RFC 5804 §2.10 DELETESCRIPT: NO (ACTIVE) for the active script, NO (NONEXISTENT) for an unknown one. */
export const deletescript: ManageSieveCommand = {
  name: 'DELETESCRIPT',
  states: AUTHENTICATED,
  async run(s, args) {
    expectArgs(args, 1);
    const name = stringArg(args[0], 'script name');
    await storage(() => s.ctx.scripts.delete(s.home, name));
    s.ok('Deletescript completed');
  },
};
