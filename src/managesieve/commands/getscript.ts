import { AUTHENTICATED, expectArgs, SieveNo, storage, stringArg, type ManageSieveCommand } from './types.js';

/** RFC 5804 §2.9 GETSCRIPT: the script as a literal, then OK; NO (NONEXISTENT) for an unknown name. */
export const getscript: ManageSieveCommand = {
  name: 'GETSCRIPT',
  states: AUTHENTICATED,
  async run(s, args) {
    expectArgs(args, 1);
    const name = stringArg(args[0], 'script name');
    const text = await storage(() => s.ctx.scripts.get(s.home, name));
    if (text === null) throw new SieveNo('There is no script by that name', 'NONEXISTENT');
    const body = Buffer.from(text, 'utf8');
    // Always a literal (§2.9 example): a script has line ends, and its size tells the client where it ends.
    await s.writeAndDrain(Buffer.concat([Buffer.from(`{${body.length}}\r\n`), body, Buffer.from('\r\n')]));
    s.ok('Getscript completed');
  },
};
