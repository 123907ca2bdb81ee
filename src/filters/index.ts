/**
 * The filter pipeline as the server runs it (the seed's Filter page), in the order a message meets the stages:
 *   connect: dnsbl
 *   mail:    blockFrom, allowFrom
 *   rcpt:    allowTo
 *   data:    attachments, clamav, spamassassin, mail-auth
 * Adding a stage is adding a file and one line here.
 */
import type { Config } from '../config/schema.js';
import type { Logger } from '../lib/logger.js';
import type { Settings } from '../settings/store.js';
import { attachments } from './attachments.js';
import { clamavStage } from './clamav.js';
import { dnsblStage } from './dnsbl.js';
import { listStages } from './lists.js';
import { mailAuthStage } from './mail-auth.js';
import { FilterPipeline } from './pipeline.js';
import { spamassassinStage } from './spamassassin.js';

/** The setting that says what a failing stage does; stages not listed here always tempfail. */
const FAILURE_SETTING = {
  clamav: 'filter.antivirus.onFailure',
  spamassassin: 'filter.spam.onFailure',
  dnsbl: 'filter.dnsbl.onFailure',
} as const;

export interface FilterDeps {
  config: Pick<Config, 'clamav' | 'spamassassin' | 'dns'>;
  settings: Pick<Settings, 'get'>;
  hostname: string;
  log: Logger;
}

export function buildPipeline(deps: FilterDeps): FilterPipeline {
  const { settings, log } = deps;
  const stages = [
    dnsblStage({ settings, dns: deps.config.dns, log }),
    ...listStages({ settings }),
    attachments({ settings }),
    clamavStage({ config: deps.config.clamav, settings, log }),
    spamassassinStage({ config: deps.config.spamassassin, settings, log }),
    mailAuthStage({ settings, dns: deps.config.dns, hostname: deps.hostname, log }),
  ];
  return new FilterPipeline({
    stages,
    log,
    onFailure: (stage) => {
      const key = FAILURE_SETTING[stage as keyof typeof FAILURE_SETTING];
      return key ? settings.get(key) : 'tempfail';
    },
  });
}
