/** The POP3 command table: verb → module. */
import { auth } from './auth.js';
import { capa } from './capa.js';
import { dele } from './dele.js';
import { list } from './list.js';
import { noop } from './noop.js';
import { pass } from './pass.js';
import { quit } from './quit.js';
import { retr } from './retr.js';
import { rset } from './rset.js';
import { stat } from './stat.js';
import { stls } from './stls.js';
import { top } from './top.js';
import type { Pop3Command } from './types.js';
import { uidl } from './uidl.js';
import { user } from './user.js';

export type { Pop3Command } from './types.js';

export const COMMANDS: ReadonlyMap<string, Pop3Command> = new Map(
  [capa, stls, user, pass, auth, stat, list, uidl, retr, top, dele, rset, noop, quit].map((c) => [c.name, c]),
);
