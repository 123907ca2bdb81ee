/**
 * Wires the core from a configuration: settings, directory (behind its cache), resolver and authenticator.
 * Front ends (SMTP, IMAP, POP3, admin, CLI) receive this object; the core never imports a front end.
 */
import { hostname as osHostname } from 'node:os';
import type { LoadedConfig } from './config/load.js';
import { createDirectory, type CachedDirectory } from './directory/index.js';
import { Authenticator } from './auth/authenticator.js';
import { FailureDelay } from './auth/failure-delay.js';
import { GssapiAcceptor } from './auth/gssapi.js';
import type { Logger } from './lib/logger.js';
import { Resolver } from './resolver/resolver.js';
import { openSettings, type Settings } from './settings/store.js';

export interface Core {
  config: LoadedConfig;
  log: Logger;
  settings: Settings;
  directory: CachedDirectory;
  resolver: Resolver;
  auth: Authenticator;
  close(): Promise<void>;
}

export function openCore(config: LoadedConfig, log: Logger, opts: { failureDelay?: FailureDelay } = {}): Core {
  const settings = openSettings(config.dataDir);
  const directory = createDirectory(config.directory, log);
  const resolver = new Resolver(directory, settings, { groupDelivery: config.directory.groupDelivery });
  const auth = new Authenticator({
    directory,
    config: config.auth,
    masterUserEnabled: () => settings.get('mailbox.masterUser') === true,
    log,
    failureDelay: opts.failureDelay,
    gssapi: config.auth.kerberos
      ? new GssapiAcceptor({ keytab: config.auth.kerberos.keytab, hostname: config.auth.kerberos.hostname ?? config.hostname ?? osHostname(), log })
      : undefined,
  });
  return {
    config,
    log,
    settings,
    directory,
    resolver,
    auth,
    async close() {
      await directory.close();
      settings.close();
    },
  };
}
