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
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { PACKAGE_ROOT } from './config/load.js';
import { MailboxRegistry } from './lifecycle/registry.js';
import { DEFAULT_RECONCILE_INTERVAL_MS, MailboxLifecycle } from './lifecycle/lifecycle.js';
import { mailboxLoginDirectory } from './lifecycle/gate.js';
import { openState, type StateStore } from './state/index.js';
import { PgMailboxRegistry } from './state/postgres/mailbox-registry.js';

export interface Core {
  config: LoadedConfig;
  log: Logger;
  settings: Settings;
  directory: CachedDirectory;
  resolver: Resolver;
  auth: Authenticator;
  /** Logins to a mailbox (IMAP, POP3): as `auth`, but an account without a mailbox now is not found (src/lifecycle). */
  mailboxAuth: Authenticator;
  /** Which store directory holds which AD object's mailbox, and orphaned mailboxes (issue 13). */
  registry: MailboxRegistry;
  /**
   * state postgres (issue 16): the cluster's registry, which `registry` writes through in every process of the node;
   * `startServer` starts it (the first sync, then LISTEN), which keeps the node's copy in settings.db current.
   */
  sharedRegistry: PgMailboxRegistry | undefined;
  lifecycle: MailboxLifecycle;
  /** The state store (issue 16): sqlite (nothing to start) or postgres; `startServer` starts it. */
  state: StateStore;
  close(): Promise<void>;
}

/** postern's version (package.json), registered with the node in a cluster. */
function packageVersion(): string {
  try {
    return (JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/**
 * `asNode: false` (the CLI): with state postgres the state is not registered as a cluster node when it is started
 * (startCliState).
 */
export function openCore(config: LoadedConfig, log: Logger, opts: { failureDelay?: FailureDelay; asNode?: boolean } = {}): Core {
  const settings = openSettings(config.dataDir);
  const state = openState(config.state, log, opts.asNode === false ? { name: 'postern cli' } : { node: { address: config.hostname ?? osHostname(), version: packageVersion() } });
  const directory = createDirectory(config.directory, log);
  const registry = new MailboxRegistry({ root: join(config.dataDir, 'mail'), settings, log });
  const sharedRegistry = state.pg ? new PgMailboxRegistry({ pg: state.pg, registry, log, nodeId: state.nodeId }) : undefined;
  if (sharedRegistry) registry.attachShared(sharedRegistry);
  const lifecycle = new MailboxLifecycle({
    registry,
    // findGuid past the cache: whether an account still exists is asked of AD itself (a cached entry of a deleted
    // account must not keep its mailbox alive, nor a cached miss orphan a restored one).
    directory: {
      findGuid: (g) => directory.backend.findGuid(g),
      findLogin: (l) => directory.findLogin(l),
      findGroup: (n) => directory.findGroup(n),
      groupsOf: (u) => directory.groupsOf(u),
    },
    settings,
    log,
  }, DEFAULT_RECONCILE_INTERVAL_MS, state.gate);
  const mailboxEnabled = (u: Parameters<MailboxLifecycle['mailboxEnabled']>[0]) => lifecycle.mailboxEnabled(u);
  const resolver = new Resolver(directory, settings, { groupDelivery: config.directory.groupDelivery, mailboxEnabled });
  const gssapi = config.auth.kerberos
    ? new GssapiAcceptor({ keytab: config.auth.kerberos.keytab, hostname: config.auth.kerberos.hostname ?? config.hostname ?? osHostname(), log })
    : undefined;
  const auth = new Authenticator({
    directory,
    config: config.auth,
    masterUserEnabled: () => settings.get('mailbox.masterUser') === true,
    log,
    failureDelay: opts.failureDelay,
    gssapi,
    freshLogin: (l) => directory.backend.findLogin(l),
  });
  // Shares the failure delay: a client guessing passwords is slowed down the same on every protocol.
  const mailboxAuth = new Authenticator({
    directory: mailboxLoginDirectory(directory, mailboxEnabled),
    config: config.auth,
    masterUserEnabled: () => settings.get('mailbox.masterUser') === true,
    log,
    failureDelay: auth.delay,
    gssapi,
    freshLogin: async (l) => {
      const user = await directory.backend.findLogin(l);
      return user && (!user.enabled || (await mailboxEnabled(user))) ? user : null;
    },
  });
  return {
    config,
    log,
    settings,
    directory,
    resolver,
    auth,
    mailboxAuth,
    registry,
    sharedRegistry,
    lifecycle,
    state,
    async close() {
      await lifecycle.stop();
      await directory.close();
      await sharedRegistry?.close();
      await state.close();
      settings.close();
    },
  };
}

/**
 * For a CLI command that reads or changes the mailbox registry or the settings with state postgres: the first sync of
 * both (so it reads the cluster's rows, not the copy this dataDir's settings.db last had, and its changes go to
 * PostgreSQL first). Nothing to do with state sqlite. TempFailure when PostgreSQL cannot answer (exit 75).
 */
export async function startCliState(core: Core): Promise<void> {
  if (!core.state.pg) return;
  await core.state.start(core.settings);
  await core.sharedRegistry?.start();
}
