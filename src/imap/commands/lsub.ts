/** LSUB (RFC 3501 §6.3.9): LIST restricted to subscribed folders. */
import type { ImapCommand } from '../command.js';
import { listLike } from './list.js';

export const lsub: ImapCommand = {
  names: ['LSUB'],
  states: ['authenticated', 'selected'],
  handle: (session, cmd) => listLike(session, cmd, true),
};
