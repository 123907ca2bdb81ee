import { AUTHENTICATED, expectArgs, storage, stringArg, type ManageSieveCommand } from './types.js';

/**
 * RFC 5804 §2.11.1 RENAMESCRIPT: NO (NONEXISTENT) when the old name is unknown, NO (ALREADYEXISTS) when the new
 * one is taken; the active script stays active under its new name.
 */
export const renamescript: ManageSieveCommand = {
  name: 'RENAMESCRIPT',
  states: AUTHENTICATED,
  async run(s, args) {
    expectArgs(args, 2);
    const from = stringArg(args[0], 'old script name');
    const to = stringArg(args[1], 'new script name');
    await storage(() => s.ctx.scripts.rename(s.home, from, to));
    s.ok('Renamescript completed');
  },
};
