/** The command table (STYLE.md "One file per command"): name → module. UID variants live in the same module. */
import type { ImapCommand } from '../command.js';
import { append } from './append.js';
import { authenticate } from './authenticate.js';
import { cancelupdate } from './cancelupdate.js';
import { capability } from './capability.js';
import { check } from './check.js';
import { close } from './close.js';
import { compress } from './compress.js';
import { copy } from './copy.js';
import { create } from './create.js';
import { deleteCommand } from './delete.js';
import { enable } from './enable.js';
import { expunge } from './expunge.js';
import { fetch } from './fetch.js';
import { getacl } from './getacl.js';
import { getquota } from './getquota.js';
import { getquotaroot } from './getquotaroot.js';
import { id } from './id.js';
import { idle } from './idle.js';
import { list } from './list.js';
import { listrights } from './listrights.js';
import { login } from './login.js';
import { logout } from './logout.js';
import { lsub } from './lsub.js';
import { move } from './move.js';
import { myrights } from './myrights.js';
import { namespace } from './namespace.js';
import { noop } from './noop.js';
import { notify } from './notify.js';
import { rename } from './rename.js';
import { search } from './search.js';
import { select } from './select.js';
import { setacl } from './setacl.js';
import { sort } from './sort.js';
import { starttls } from './starttls.js';
import { status } from './status.js';
import { store } from './store.js';
import { subscribe } from './subscribe.js';
import { thread } from './thread.js';
import { unselect } from './unselect.js';
import { genurlauth } from './genurlauth.js';
import { resetkey } from './resetkey.js';
import { urlfetch } from './urlfetch.js';

const MODULES: ImapCommand[] = [
  capability, noop, logout, starttls, login, authenticate, id, enable, namespace,
  select, create, deleteCommand, rename, subscribe, list, lsub, status, append,
  check, close, unselect, expunge, search, fetch, store, copy, move, idle, getquotaroot, getquota,
  myrights, getacl, listrights, setacl,
  sort, thread, compress, cancelupdate, notify,
  genurlauth, resetkey, urlfetch,
];

export const COMMANDS: ReadonlyMap<string, ImapCommand> = new Map(MODULES.flatMap((m) => m.names.map((n) => [n, m] as const)));
