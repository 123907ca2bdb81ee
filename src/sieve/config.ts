/**
 * Config `sieve`: Sieve at local delivery (issue 15). Script storage quotas are ManageSieve's (config managesieve).
 * Defaults follow Pigeonhole's (sieve_max_actions 32, sieve_max_redirects 4, sieve_vacation_min_period 1d,
 * sieve_vacation_max_period 60d, sieve_max_cpu_time 30s).
 */
import { z } from 'zod';

export const sieveDeliverySchema = z
  .object({
    enabled: z.boolean().default(true).describe("Run the before script and users' active Sieve scripts at local delivery"),
    before: z
      .string()
      .optional()
      .describe('Admin "before" script run ahead of every user\'s own script (Pigeonhole sieve_before), e.g. /etc/postern/before.sieve. Relative to the config file'),
    globalDir: z
      .string()
      .optional()
      .describe('Directory of global scripts for `include :global "name"` (RFC 6609; NAME.sieve files). Relative to the config file'),
    maxActions: z.number().int().min(1).max(1000).default(32).describe('Actions one script run may produce'),
    maxRedirects: z.number().int().min(0).max(100).default(4).describe('Redirects per message and user (a loop amplifier otherwise)'),
    maxRunMs: z.number().int().min(10).default(30_000).describe('Run time of one script before it is stopped (the message is then kept in INBOX)'),
    vacationMinSeconds: z
      .number()
      .int()
      .min(0)
      .default(86_400)
      .describe('Shortest time between two vacation replies to one sender, whatever :days/:seconds say (RFC 6131 §2)'),
    vacationMaxDays: z.number().int().min(1).default(60).describe('Longest :days a vacation action may ask (RFC 5230 §4.1)'),
  })
  .strict();
