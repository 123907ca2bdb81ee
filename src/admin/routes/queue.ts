/**
 * Queue management (the seed's Queue page; Postfix's mailq, postqueue -f, postsuper -d): list with filters and
 * paging, attempt to send now (all or some), delete some or all. Deleting does not notify the sender.
 */
import { parseQueueId } from '../../queue/id.js';
import type { QueueEnvelope, QueueRecipient } from '../../queue/types.js';
import { badRequest, notFound } from '../errors.js';
import type { AdminDeps, App } from '../types.js';

const STATES = ['pending', 'deferred', 'failed', 'delivered'] as const;
type StateFilter = (typeof STATES)[number];

function byState(e: QueueEnvelope, state: QueueRecipient['state']): QueueRecipient[] {
  return e.recipients.filter((r) => r.state === state);
}

export function queueSummary(e: QueueEnvelope) {
  const pending = byState(e, 'pending');
  const failed = byState(e, 'failed');
  return {
    id: e.id,
    receivedAt: e.receivedAt,
    size: e.size,
    from: e.from,
    client: e.client,
    attempts: e.attempts,
    nextAttemptAt: e.nextAttemptAt,
    lastAttemptAt: e.lastAttemptAt ?? null,
    lastResult: (pending.find((r) => r.lastResult) ?? failed.find((r) => r.lastResult))?.lastResult ?? null,
    recipients: e.recipients.map((r) => ({
      address: r.address,
      state: r.state,
      attempts: r.attempts,
      lastResult: r.lastResult ?? null,
      ...(r.parent ? { parent: r.parent } : {}),
      ...(r.origin ? { origin: r.origin } : {}),
      ...(r.hidden ? { hidden: true } : {}),
    })),
  };
}

/** pending: has recipients to deliver; deferred: pending after at least one attempt; failed/delivered: has such. */
function matchesState(e: QueueEnvelope, state: StateFilter): boolean {
  if (state === 'deferred') return e.attempts > 0 && byState(e, 'pending').length > 0;
  return byState(e, state).length > 0;
}

function parseIds(ids: unknown, field: string): string[] {
  const list = typeof ids === 'string' ? ids.split(',').map((s) => s.trim()).filter(Boolean) : ids;
  if (!Array.isArray(list)) throw badRequest(`${field}: expected a list of queue ids`, field);
  return [...new Set(list.map((id) => parseQueueId(String(id))))];
}

export function queueRoutes(app: App, deps: AdminDeps): void {
  const { spool, scheduler } = deps;

  app.get(
    '/api/queue',
    {
      schema: {
        querystring: {
          type: 'object',
          properties: {
            from: { type: 'string' },
            to: { type: 'string' },
            state: { type: 'string', enum: [...STATES] },
            offset: { type: 'integer', minimum: 0, default: 0 },
            limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 },
          },
          additionalProperties: false,
        },
      },
    },
    async (req) => {
      const q = req.query as { from?: string; to?: string; state?: StateFilter; offset: number; limit: number };
      const from = q.from?.toLowerCase();
      const to = q.to?.toLowerCase();
      const all = (await spool.list()).sort((a, b) => a.receivedAt.localeCompare(b.receivedAt) || a.id.localeCompare(b.id));
      const matched = all.filter(
        (e) =>
          (from === undefined || e.from.toLowerCase().includes(from)) &&
          (to === undefined || e.recipients.some((r) => r.address.toLowerCase().includes(to))) &&
          (q.state === undefined || matchesState(e, q.state)),
      );
      return {
        total: matched.length,
        offset: q.offset,
        limit: q.limit,
        messages: matched.slice(q.offset, q.offset + q.limit).map(queueSummary),
      };
    },
  );

  app.get('/api/queue/:id', async (req) => {
    const { id } = req.params as { id: string };
    const e = await spool.read(parseQueueId(id));
    if (!e) throw notFound(`no message ${id} in the queue`);
    return queueSummary(e);
  });

  app.post(
    '/api/queue/flush',
    {
      schema: {
        body: {
          anyOf: [
            { type: 'null' },
            { type: 'object', properties: { ids: { type: 'array', items: { type: 'string' } } }, additionalProperties: false },
          ],
        },
      },
    },
    async (req) => {
      const body = (req.body ?? {}) as { ids?: string[] };
      const ids = body.ids === undefined ? undefined : parseIds(body.ids, 'ids');
      const r = await scheduler.flush(ids);
      deps.log.info({ flushed: r.flushed.length, by: req.admin }, 'admin: queue flushed');
      return r;
    },
  );

  app.delete(
    '/api/queue',
    {
      schema: {
        querystring: {
          type: 'object',
          properties: { ids: { type: 'string' }, all: { type: 'boolean' } },
          additionalProperties: false,
        },
      },
    },
    async (req) => {
      const q = req.query as { ids?: string; all?: boolean };
      if (q.all && q.ids) throw badRequest('give ids or all=true, not both', 'ids');
      if (!q.all && !q.ids) throw badRequest('give the queue ids to delete (?ids=ID1,ID2), or ?all=true', 'ids');
      const targets = q.all ? (await spool.list()).map((e) => e.id) : parseIds(q.ids, 'ids');
      const deleted: string[] = [];
      const unknown: string[] = [];
      // The trace records who: `api:<admin login>` or `api:token:<name>`.
      for (const id of targets) ((await spool.remove(id, `api:${req.admin ?? 'unknown'}`)) ? deleted : unknown).push(id);
      // The scheduler forgets removed messages at its next scan; ask for it now.
      void scheduler.scan();
      deps.log.info({ deleted: deleted.length, by: req.admin }, 'admin: queue messages deleted');
      return { deleted, unknown };
    },
  );
}
