/**
 * Times as an admin types them for `postern trace --since` and `GET /api/trace?since=`: an ISO 8601 date or date
 * and time (`2026-12-01`, `2026-12-01T09:30:00Z`), or a span back from now (`90m`, `2h`, `3d`, `1w`).
 */

const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 7 * 86_400_000 };

export class TraceTimeError extends Error {}

/** Epoch ms for `text`; throws TraceTimeError naming what is expected. */
export function parseTraceTime(text: string, now = Date.now()): number {
  const s = text.trim();
  const span = /^(\d+)\s*([smhdw])$/i.exec(s);
  if (span) return now - Number(span[1]) * UNIT_MS[span[2].toLowerCase()];
  // A date and time: Date.parse reads ISO 8601 (a date alone is UTC midnight, as ECMAScript specifies).
  if (/^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$/i.test(s)) {
    const t = Date.parse(s.replace(' ', 'T'));
    if (Number.isFinite(t)) return t;
  }
  throw new TraceTimeError(`not a time: ${JSON.stringify(s.slice(0, 40))} (expected an ISO date or time like 2026-12-01T09:30Z, or a span back from now like 90m, 2h, 3d, 1w)`);
}
