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
import { attachments, policyEnabled, readAttachmentPolicy } from './attachments.js';
import { clamavStage } from './clamav.js';
import { dnsblStage } from './dnsbl.js';
import { listStages } from './lists.js';
import { mailAuthStage } from './mail-auth.js';
import { FilterPipeline } from './pipeline.js';
import { spamassassinStage } from './spamassassin.js';
import type { FilterPhase, FilterStage } from './types.js';
import type { TraceRecorder } from '../trace/types.js';

/** The setting that says what a failing stage does; stages not listed here always tempfail. */
const FAILURE_SETTING = {
  clamav: 'filter.antivirus.onFailure',
  spamassassin: 'filter.spam.onFailure',
  dnsbl: 'filter.dnsbl.onFailure',
} as const;

/**
 * The switch of each stage (the seed's Filter page): a stage whose switch is off is not run and logs nothing, so
 * the log shows only work done — no `filter clamav: accept` per message with the antivirus off. Read at each
 * message, so a switch changed at run time applies to the next one. Stages not listed always run.
 */
export function stageSwitches(settings: Pick<Settings, 'get'>): Record<string, () => boolean> {
  return {
    dnsbl: () => settings.get('filter.dnsbl.zones').length > 0,
    blockFrom: () => settings.get('filter.lists.blockFrom').length > 0,
    allowFrom: () => settings.get('filter.lists.allowFrom').length > 0,
    allowTo: () => settings.get('filter.lists.allowTo').length > 0,
    attachments: () => policyEnabled(readAttachmentPolicy(settings)),
    clamav: () => settings.get('filter.antivirus'),
    spamassassin: () => settings.get('filter.spam'),
  };
}

/** The pipeline with the stages whose switch is off left out of each run (see stageSwitches). */
class SwitchedPipeline extends FilterPipeline {
  constructor(
    opts: ConstructorParameters<typeof FilterPipeline>[0],
    private readonly switches: Record<string, () => boolean>,
  ) {
    super(opts);
  }

  override stagesFor(phase: FilterPhase): FilterStage[] {
    return super.stagesFor(phase).filter((s) => this.switches[s.name]?.() ?? true);
  }
}

export interface FilterDeps {
  config: Pick<Config, 'clamav' | 'spamassassin' | 'dns'>;
  settings: Pick<Settings, 'get'>;
  hostname: string;
  log: Logger;
  /** Message trace: each data-phase verdict is recorded (FilterPipelineOptions.trace). */
  trace?: TraceRecorder;
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
  return new SwitchedPipeline({
    stages,
    log,
    trace: deps.trace,
    onFailure: (stage) => {
      const key = FAILURE_SETTING[stage as keyof typeof FAILURE_SETTING];
      return key ? settings.get(key) : 'tempfail';
    },
  }, stageSwitches(settings));
}
