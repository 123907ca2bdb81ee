/** The ManageSieve command table (RFC 5804 §2): name → module. */
import { authenticate } from './authenticate.js';
import { capability } from './capability.js';
import { checkscript } from './checkscript.js';
import { deletescript } from './deletescript.js';
import { getscript } from './getscript.js';
import { havespace } from './havespace.js';
import { listscripts } from './listscripts.js';
import { logout } from './logout.js';
import { noop } from './noop.js';
import { putscript } from './putscript.js';
import { renamescript } from './renamescript.js';
import { setactive } from './setactive.js';
import { starttls } from './starttls.js';
import type { ManageSieveCommand } from './types.js';
import { unauthenticate } from './unauthenticate.js';

export type { ManageSieveCommand } from './types.js';

export const COMMANDS: ReadonlyMap<string, ManageSieveCommand> = new Map(
  [authenticate, starttls, logout, capability, havespace, putscript, listscripts, setactive, getscript, deletescript, renamescript, checkscript, noop, unauthenticate].map(
    (c) => [c.name, c],
  ),
);
