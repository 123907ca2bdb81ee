/**
 * Message trace (Exchange's message tracking, issue 13 item 6): `GET /api/trace` finds messages by sender,
 * recipient, queue id, Message-ID and time, and answers each with its whole path (src/trace/types.ts lists the
 * events). The same query as `postern trace`.
 */
import { parseQueueId } from '../../queue/id.js';
import { DEFAULT_TRACE_LIMIT, MAX_TRACE_LIMIT, type TraceQuery } from '../../trace/types.js';
import { parseTraceTime, TraceTimeError } from '../../trace/time.js';
import { badRequest, HttpError } from '../errors.js';
import type { AdminDeps, App } from '../types.js';

function time(text: string | undefined, field: string): number | undefined {
  if (text === undefined) return undefined;
  try {
    return parseTraceTime(text);
  } catch (err) {
    if (err instanceof TraceTimeError) throw badRequest(`${field}: ${err.message}`, field);
    throw err;
  }
}

export function traceRoutes(app: App, deps: AdminDeps): void {
  app.get(
    '/api/trace',
    {
      schema: {
        querystring: {
          type: 'object',
          properties: {
            from: { type: 'string' },
            to: { type: 'string' },
            id: { type: 'string' },
            messageId: { type: 'string' },
            since: { type: 'string' },
            until: { type: 'string' },
            limit: { type: 'integer', minimum: 1, maximum: MAX_TRACE_LIMIT, default: DEFAULT_TRACE_LIMIT },
          },
          additionalProperties: false,
        },
      },
    },
    async (req) => {
      if (!deps.trace) throw new HttpError(503, 'the message trace is not available in this server');
      const q = req.query as { from?: string; to?: string; id?: string; messageId?: string; since?: string; until?: string; limit: number };
      const query: TraceQuery = {
        from: q.from,
        to: q.to,
        queueId: q.id === undefined ? undefined : parseQueueId(q.id),
        messageId: q.messageId,
        since: time(q.since, 'since'),
        until: time(q.until, 'until'),
        limit: q.limit,
      };
      const messages = await deps.trace.query(query);
      return { count: messages.length, limit: q.limit, messages };
    },
  );
}
