/**
 * DKIM signing keys of the sending domains (the admin API's `postern dkim`): list, generate, rotate, delete, and the
 * TXT record to publish. The keys are where the configuration keeps them (src/delivery/dkim-keys.ts): the key files
 * of dataDir, or with state postgres the cluster's table, so a key made through one node's API signs the mail of
 * every node. The private key never leaves the server: answers carry the public record only.
 */
import { DKIM_ALLOWED_BITS, DkimKeyError, type DkimRecord } from '../../delivery/dkim.js';
import { openDkimKeys, rotationSelector, type DkimKeyStore } from '../../delivery/dkim-keys.js';
import { normalizeDomain } from '../../settings/validate.js';
import { badRequest, HttpError, notFound } from '../errors.js';
import type { AdminDeps, App } from '../types.js';

function recordBody(r: DkimRecord): Record<string, unknown> {
  return { domain: r.domain, selector: r.selector, bits: r.bits, name: r.name, value: r.value, strings: r.strings, zoneLine: r.zoneLine };
}

/** DkimKeyError as the API says it: 409 for a domain that has a key, 400 for a bad selector or size. */
function mapped(err: unknown): never {
  if (err instanceof DkimKeyError) throw err.reason === 'exists' ? new HttpError(409, err.message) : err.reason === 'not-found' ? notFound(err.message) : badRequest(err.message);
  throw err;
}

export function dkimRoutes(app: App, deps: AdminDeps): void {
  const keys: DkimKeyStore = deps.dkimKeys ?? openDkimKeys(deps.config, deps.state?.pg);
  const bits = { type: 'integer', enum: [...DKIM_ALLOWED_BITS] };

  app.get('/api/dkim', async () => ({
    keys: (await keys.list()).map((k) => ({ domain: k.domain, selector: k.selector, bits: k.bits, created: k.created.toISOString() })),
  }));

  app.get('/api/dkim/:domain', async (req) => {
    const domain = normalizeDomain((req.params as { domain: string }).domain);
    const r = await keys.record(domain);
    if (!r) throw notFound(`${domain} has no DKIM key`);
    return recordBody(r);
  });

  app.post(
    '/api/dkim',
    {
      schema: {
        body: {
          type: 'object',
          required: ['domain'],
          properties: { domain: { type: 'string' }, selector: { type: 'string' }, bits, force: { type: 'boolean' } },
          additionalProperties: false,
        },
      },
    },
    async (req, reply) => {
      const body = req.body as { domain: string; selector?: string; bits?: number; force?: boolean };
      const r = await keys.generate(body.domain, { selector: body.selector, bits: body.bits, force: body.force }).catch(mapped);
      deps.log.info({ domain: r.domain, selector: r.selector, bits: r.bits, replaced: r.replaced, by: req.admin }, 'admin: DKIM key generated');
      return reply.code(201).send({ ...recordBody(r), replaced: r.replaced });
    },
  );

  app.post(
    '/api/dkim/:domain/rotate',
    { schema: { body: { type: ['object', 'null'], properties: { bits }, additionalProperties: false } } },
    async (req) => {
      const domain = normalizeDomain((req.params as { domain: string }).domain);
      const current = await keys.record(domain);
      if (!current) throw notFound(`${domain} has no DKIM key to rotate`);
      const body = (req.body ?? {}) as { bits?: number };
      const r = await keys.generate(domain, { selector: rotationSelector([current.selector]), bits: body.bits ?? current.bits, force: true }).catch(mapped);
      deps.log.info({ domain, selector: r.selector, replaced: r.replaced, by: req.admin }, 'admin: DKIM key rotated');
      return { ...recordBody(r), replaced: r.replaced };
    },
  );

  app.delete('/api/dkim/:domain', async (req) => {
    const domain = normalizeDomain((req.params as { domain: string }).domain);
    const removed = await keys.remove(domain);
    if (!removed.length) throw notFound(`${domain} has no DKIM key`);
    deps.log.info({ domain, removed, by: req.admin }, 'admin: DKIM key deleted');
    return { domain, removed };
  });
}
