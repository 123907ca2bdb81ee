/**
 * The interpreter at delivery. Filled in when the interpreter (src/sieve/index.ts execute) is merged; until then
 * no script runs and delivery does what it did without Sieve (out-of-office still applies).
 */
import type { Logger } from '../lib/logger.js';
import type { ScriptRunner } from './delivery.js';
import type { sieveDeliverySchema } from './config.js';
import type { z } from 'zod';

export function makeScriptRunner(_config: z.output<typeof sieveDeliverySchema>, _log: Logger): ScriptRunner | undefined {
  return undefined;
}
