import { sieveString } from '../response.js';
import { AUTHENTICATED, expectArgs, storage, type ManageSieveCommand } from './types.js';

/** RFC 5804 §2.7 LISTSCRIPTS: one line per script, the active one marked ACTIVE. */
export const listscripts: ManageSieveCommand = {
  name: 'LISTSCRIPTS',
  states: AUTHENTICATED,
  async run(s, args) {
    expectArgs(args, 0);
    const list = await storage(() => s.ctx.scripts.list(s.home));
    for (const { name, active } of list) s.write(Buffer.concat([sieveString(name), Buffer.from(active ? ' ACTIVE\r\n' : '\r\n')]));
    s.ok('Listscripts completed');
  },
};
