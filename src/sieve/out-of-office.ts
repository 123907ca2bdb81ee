/**
 * The out-of-office IT sets for a user (a leaver, someone ill): start and end, subject, text. Stored in sieve.db
 * (src/sieve/state.ts), never in the user's own scripts, and applied at delivery as a vacation action that runs
 * before the user's script (src/sieve/delivery.ts), with the same RFC 5230 / RFC 3834 rules and reply tracking.
 * One zod schema serves the admin API and the CLI, so both refuse the same things with the same words.
 */
import { z } from 'zod';
import type { OutOfOffice } from './state.js';

const isoDate = z
  .string()
  .trim()
  .refine((s) => /^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$/.test(s) && !Number.isNaN(Date.parse(s)), {
    message: 'expected an ISO 8601 date or date-time, e.g. 2026-12-24 or 2026-12-24T08:00:00Z',
  });

export const outOfOfficeInput = z
  .object({
    start: isoDate.nullish().describe('From when replies are sent (a date alone is its midnight UTC); absent: now'),
    end: isoDate.nullish().describe('Until when (a date alone: the end of that day UTC); absent: until cleared'),
    subject: z.string().max(998).nullish().describe('Subject of the reply; absent: "Auto: " and the original subject'),
    text: z.string().min(1, 'text must not be empty').max(64 * 1024),
    days: z.number().int().min(1).max(365).default(7).describe('Days before the same sender is answered again (RFC 5230 :days)'),
  })
  .strict()
  .refine((o) => !o.start || !o.end || endTime(o.end) > startTime(o.start), { message: 'end must be after start', path: ['end'] });

export type OutOfOfficeInput = z.input<typeof outOfOfficeInput>;

/** A date alone starts at its midnight UTC. */
export function startTime(s: string): number {
  return /^\d{4}-\d{2}-\d{2}$/.test(s) ? Date.parse(`${s}T00:00:00Z`) : Date.parse(s);
}

/** A date alone ends at the end of that day UTC: "--end 2026-12-31" includes the 31st. */
export function endTime(s: string): number {
  return /^\d{4}-\d{2}-\d{2}$/.test(s) ? Date.parse(`${s}T00:00:00Z`) + 86_400_000 : Date.parse(s);
}

/** Whether replies are due at `now`. */
export function outOfOfficeActive(o: { start?: string | null; end?: string | null }, now: number): boolean {
  if (o.start && now < startTime(o.start)) return false;
  if (o.end && now >= endTime(o.end)) return false;
  return true;
}

/** What the API and the CLI show: the stored fields and whether it answers now. */
export function outOfOfficeView(o: OutOfOffice, now = Date.now()): OutOfOffice & { active: boolean } {
  return { ...o, active: outOfOfficeActive(o, now) };
}
