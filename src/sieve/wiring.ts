/**
 * Builds the SieveDelivery `postern serve` gives the delivery agent, from config `sieve` and the store: where homes
 * and folders are, how scripts are read, and the interpreter that runs them (src/sieve/runner.ts).
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { LoadedConfig } from '../config/load.js';
import type { Directory } from '../directory/types.js';
import type { Logger } from '../lib/logger.js';
import type { MaildirStore } from '../store/maildir.js';
import { SieveDelivery } from './delivery.js';
import { makeScriptRunner } from './runner.js';
import { readActiveScript } from './scripts.js';
import type { SieveState } from './state.js';

export interface SieveWiring {
  config: Pick<LoadedConfig, 'sieve'>;
  state: SieveState;
  store: Pick<MaildirStore, 'maildirPath' | 'folderPath'>;
  directory: Pick<Directory, 'findLogin'>;
  hostname: string;
  log: Logger;
}

export function makeSieveDelivery(w: SieveWiring): SieveDelivery {
  const c = w.config.sieve;
  return new SieveDelivery({
    state: w.state,
    hostname: w.hostname,
    log: w.log,
    findUser: (login) => w.directory.findLogin(login),
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
    activeScript: async (home) => (c.enabled ? readActiveScript(home) : null),
    run: c.enabled ? makeScriptRunner(c, w.log) : undefined,
    limits: { maxRedirects: c.maxRedirects, vacationMinSeconds: c.vacationMinSeconds, vacationMaxDays: c.vacationMaxDays },
  });
}
