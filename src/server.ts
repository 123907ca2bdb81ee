/**
 * `postern serve`: the whole server from one configuration — the core (settings, directory, resolver, auth), the
 * Maildir store, the queue with its scheduler and delivery agent, and the SMTP listeners.
 */
import { hostname as osHostname } from 'node:os';
import { join } from 'node:path';
import type { LoadedConfig } from './config/load.js';
import { openCore, type Core } from './core.js';
import { LocalRemoteAgent } from './delivery/agent.js';
import { attachDisclaimer } from './delivery/disclaimer.js';
import { RemoteDelivery } from './delivery/remote.js';
import { domainOf } from './directory/mapping.js';
import type { Logger } from './lib/logger.js';
import { loadTls, type TlsMaterial } from './lib/tls.js';
import { newQueueId } from './queue/id.js';
import { Scheduler } from './queue/scheduler.js';
import { Spool } from './queue/spool.js';
import { startSmtp, type SmtpService } from './smtp/server.js';
import { MaildirStore } from './store/maildir.js';

export interface Server {
  core: Core;
  hostname: string;
  tls: TlsMaterial;
  store: MaildirStore;
  spool: Spool;
  scheduler: Scheduler;
  smtp: SmtpService;
  /** Bound ports by listener name (useful with port 0). */
  ports: Record<string, number>;
  close(): Promise<void>;
}

export function serverHostname(config: LoadedConfig): string {
  return config.hostname ?? osHostname();
}

export async function startServer(config: LoadedConfig, log: Logger): Promise<Server> {
  const hostname = serverHostname(config);
  let core: Core | undefined;
  let scheduler: Scheduler | undefined;
  try {
    core = openCore(config, log);
    const { settings } = core;
    const tls = await loadTls({ cert: config.tls.cert, key: config.tls.key, dataDir: config.dataDir, hostname });
    const store = new MaildirStore({ root: join(config.dataDir, 'mail'), hostname, log });
    const spool = new Spool(config.dataDir, { log });
    await spool.init();
    const remote = new RemoteDelivery({ settings, hostname, config: { delivery: config.delivery, dns: config.dns }, log });
    const agent = new LocalRemoteAgent({ resolver: core.resolver, settings, store, remote, hostname, hopLimit: config.delivery.hopLimit, log });
    scheduler = new Scheduler({ spool, settings, config: config.queue, hostname, log, agent });
    await scheduler.start();
    const smtp = await startSmtp({
      deps: {
        hostname,
        settings,
        resolver: core.resolver,
        directory: core.directory,
        auth: core.auth,
        log,
        limits: { maxRecipients: config.smtp.maxRecipients, errorLimit: config.smtp.errorLimit },
        enqueue: (message, envelope) => spool.enqueue(message, envelope),
        newQueueId: () => newQueueId(),
      },
      tls,
      listeners: config.listeners,
      limits: config.smtp,
      data: {
        hopLimit: config.delivery.hopLimit,
        // The seed's disclaimer: attached (not added) to mail our users send from a domain that has one.
        outgoing: (message, from) => {
          const domain = from ? settings.getDomain(domainOf(from.toLowerCase())) : null;
          return domain?.type === 'local' && domain.disclaimer ? attachDisclaimer(message, domain.disclaimer) : message;
        },
      },
    });
    const ports = Object.fromEntries(smtp.listeners.map((l) => [l.role, l.port]));
    const running = { core, scheduler };
    return {
      core,
      hostname,
      tls,
      store,
      spool,
      scheduler,
      smtp,
      ports,
      async close() {
        await smtp.close();
        await running.scheduler.stop();
        await running.core.close();
      },
    };
  } catch (err) {
    // A listener that cannot bind (port in use) must not leave a scheduler delivering from this dataDir.
    await scheduler?.stop().catch(() => undefined);
    await core?.close().catch(() => undefined);
    throw err;
  }
}
