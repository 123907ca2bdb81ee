/**
 * Mail domains (the seed's Domains page): local (delivered here) or relayed to a next hop, with the always-Bcc
 * address, the disclaimer text and the IMAP server holding the domain's mailboxes (RFC 2221 login referrals). Deleting a domain never deletes mail (see Settings.removeDomain).
 */
import type { DomainInput, DomainPatch } from '../../settings/store.js';
import { notFound } from '../errors.js';
import { checkApiReferences } from '../references.js';
import type { AdminDeps, App } from '../types.js';

const nullableString = { type: ['string', 'null'] };
const fields = {
  type: { type: 'string', enum: ['local', 'relay'] },
  nexthop: nullableString,
  bcc: nullableString,
  disclaimer: nullableString,
  imapReferral: nullableString,
};

export function domainsRoutes(app: App, deps: AdminDeps): void {
  const { settings } = deps;

  app.get('/api/domains', async () => ({ domains: settings.listDomains() }));

  app.get('/api/domains/:name', async (req) => {
    const { name } = req.params as { name: string };
    const d = settings.getDomain(name);
    if (!d) throw notFound(`no domain ${name}`);
    return d;
  });

  app.post(
    '/api/domains',
    {
      schema: {
        body: {
          type: 'object',
          required: ['name'],
          properties: { name: { type: 'string' }, ...fields },
          additionalProperties: false,
        },
      },
    },
    async (req, reply) => {
      const body = req.body as Partial<DomainInput> & { name: string };
      if (typeof body.bcc === 'string') {
        const adding = (body.type ?? 'local') === 'local' ? body.name.trim().toLowerCase().replace(/\.$/, '') : undefined;
        await checkApiReferences(deps, req, reply, [{ kind: 'bcc', field: 'bcc', address: body.bcc, addingLocalDomain: adding }]);
      }
      const d = await settings.apply(() => settings.addDomain({ ...body, type: body.type ?? 'local' }));
      deps.log.info({ domain: d.name, by: req.admin }, 'admin: domain added');
      return reply.code(201).send(d);
    },
  );

  app.patch(
    '/api/domains/:name',
    { schema: { body: { type: 'object', properties: fields, additionalProperties: false } } },
    async (req, reply) => {
      const { name } = req.params as { name: string };
      const patch = req.body as DomainPatch;
      if (typeof patch.bcc === 'string') {
        const adding = patch.type === 'local' ? name.trim().toLowerCase().replace(/\.$/, '') : undefined;
        await checkApiReferences(deps, req, reply, [{ kind: 'bcc', field: 'bcc', address: patch.bcc, addingLocalDomain: adding }]);
      }
      const d = await settings.apply(() => settings.updateDomain(name, patch));
      deps.log.info({ domain: d.name, by: req.admin }, 'admin: domain changed');
      return d;
    },
  );

  app.delete('/api/domains/:name', async (req) => {
    const { name } = req.params as { name: string };
    const removed = await settings.apply(() => settings.removeDomain(name));
    deps.log.info({ domain: removed.domain.name, by: req.admin }, 'admin: domain removed');
    return removed;
  });
}
