/**
 * Builds the SieveDelivery `postern serve` gives the delivery agent, from config `sieve` and the store: where homes
 * and folders are, how scripts are read, and the interpreter that runs them (src/sieve/runner.ts).
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { LoadedConfig } from '../config/load.js';
import type { Directory } from '../directory/types.js';
import type { Logger } from '../lib/logger.js';
import type { MaildirStore } from '../store/maildir.js';
import { SieveDelivery } from './delivery.js';
import { makeScriptRunner } from './runner.js';
import { ACTIVE_LINK, SieveScriptStore } from './storage.js';
import type { SieveState } from './state.js';

export interface SieveWiring {
  config: Pick<LoadedConfig, 'sieve'>;
  state: SieveState;
  store: Pick<MaildirStore, 'maildirPath' | 'folderPath'>;
  directory: Pick<Directory, 'findLogin' | 'findGuid'>;
  hostname: string;
  log: Logger;
}

export function makeSieveDelivery(w: SieveWiring): SieveDelivery {
  const c = w.config.sieve;
  // The scripts ManageSieve stores, in Pigeonhole's layout (read only here).
  const scripts = new SieveScriptStore();
  return new SieveDelivery({
    state: w.state,
    hostname: w.hostname,
    log: w.log,
    // By the AD object: looking the login up would cache login → object, and after a rename a new account that
    // reuses the login would be taken for the old one until that entry expires.
    findUser: async (owner) => {
      if (!owner.guid) return w.directory.findLogin(owner.login);
      const e = await w.directory.findGuid(owner.guid);
      return e?.kind === 'user' ? e : null;
    },
    home: (owner) => dirname(w.store.maildirPath(owner)),
    folderExists: (owner, folder) => {
      if (folder.toLowerCase() === 'inbox') return true;
      try {
        return existsSync(w.store.folderPath(owner, folder));
      } catch {
        return false; // not a valid folder name
      }
    },
    beforeScript: () => (c.enabled && c.before ? { path: c.before, text: readFileSync(c.before, 'utf8') } : null),
    activeScript: async (home) => {
      if (!c.enabled) return null;
      const active = await scripts.getActive(home);
      return active ? { path: join(home, active.name === null ? ACTIVE_LINK : `sieve/${active.name}.sieve`), text: active.text } : null;
    },
    run: c.enabled ? makeScriptRunner(c, w.log) : undefined,
    limits: { maxRedirects: c.maxRedirects, vacationMinSeconds: c.vacationMinSeconds, vacationMaxDays: c.vacationMaxDays },
  });
}
