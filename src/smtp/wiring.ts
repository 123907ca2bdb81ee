/**
 * The pieces of the SMTP service that the main process (src/server.ts) and an SMTP worker process
 * (worker-main.ts, smtp.workers) build the same way from the same configuration, so that a message accepted by a
 * worker is spooled, marked and signed exactly as one accepted by the main process.
 */
import { join } from 'node:path';
import type { LoadedConfig } from '../config/load.js';
import { attachDisclaimer } from '../delivery/disclaimer.js';
import { DkimSigner } from '../delivery/dkim.js';
import { openDkimKeys } from '../delivery/dkim-keys.js';
import type { PgState } from '../state/postgres/pool.js';
import { localDeliveryPrefix } from '../delivery/prefix.js';
import { Srs } from '../delivery/srs.js';
import { domainOf } from '../directory/mapping.js';
import { buildPipeline } from '../filters/index.js';
import type { FilterPipeline } from '../filters/pipeline.js';
import type { Logger } from '../lib/logger.js';
import type { QueueEnvelope } from '../queue/types.js';
import type { Settings } from '../settings/store.js';
import type { TraceRecorder } from '../trace/types.js';
import type { OnDataOptions } from './on-data.js';

/**
 * Single-recipient mail is spooled with the lines local delivery adds, so delivery can link the spool file into
 * the Maildir: one write and one fsync of the message from DATA to the mailbox instead of two (issue 11).
 */
export function spoolPrefixFor(e: QueueEnvelope): string | undefined {
  return e.recipients.length === 1 ? localDeliveryPrefix(e.from, e.recipients[0].address) : undefined;
}

/** SRS for forwards (config srs): the secret is made in dataDir on the first start, like the TLS pair. */
export function makeSrs(config: LoadedConfig, hostname: string): Srs | undefined {
  return config.srs.enabled
    ? new Srs({ secrets: Srs.secretsFromFile(config.srs.secretFile ?? join(config.dataDir, 'srs.secret')), domain: config.srs.domain ?? hostname, maxAgeDays: config.srs.maxAgeDays })
    : undefined;
}

/** The content filters, with the switches of `filtersOff` (embedded defaults: a daemon that is not there) off. */
export function makeFilters(config: LoadedConfig, settings: Settings, filtersOff: ReadonlySet<string>, hostname: string, log: Logger, trace?: TraceRecorder): FilterPipeline {
  const filterSettings = { get: ((key: string) => (filtersOff.has(key) ? false : settings.get(key as never))) as typeof settings.get };
  return buildPipeline({ config, settings: filterSettings, hostname, log, trace });
}

/** What DATA does beyond the protocol: the hop limit, and the changes to mail our users send. */
export function dataOptions(config: LoadedConfig, settings: Settings, log: Logger, pg?: PgState): OnDataOptions {
  // state postgres: the cluster's keys (a key added through any node signs here too); the key files otherwise.
  const dkim = new DkimSigner({ dataDir: config.dataDir, log, ...(config.state.type === 'postgres' ? { keys: openDkimKeys(config, pg) } : {}) });
  return {
    hopLimit: config.delivery.hopLimit,
    // Mail our users send: the seed's disclaimer is attached (not added) for a domain that has one, then the
    // message is DKIM-signed for its From domain when a key exists (postern dkim generate), signature last.
    outgoing: async (message, from) => {
      const domain = from ? settings.getDomain(domainOf(from.toLowerCase())) : null;
      const withDisclaimer = domain?.type === 'local' && domain.disclaimer ? attachDisclaimer(message, domain.disclaimer) : message;
      return dkim.sign(withDisclaimer);
    },
  };
}
