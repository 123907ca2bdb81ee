import { AUTHENTICATED, badArgs, expectArgs, storage, stringArg, type ManageSieveCommand } from './types.js';

/**
 * RFC 5804 §2.5 HAVESPACE: whether PUTSCRIPT of that name and size would pass the quota now: OK, or NO with
 * QUOTA/MAXSIZE (one script too large), QUOTA/MAXSCRIPTS (too many scripts) or QUOTA (storage full).
 */
export const havespace: ManageSieveCommand = {
  name: 'HAVESPACE',
  states: AUTHENTICATED,
  async run(s, args) {
    expectArgs(args, 2);
    const name = stringArg(args[0], 'script name');
    const size = args[1];
    if (size?.kind !== 'number') throw badArgs('Expected the script size as a number');
    await storage(() => s.ctx.scripts.checkSpace(s.home, name, size.value));
    s.ok('Putscript would succeed');
  },
};
