/**
 * Email addresses / pseudonyms (the seed's Email addresses page): a local part on every local domain or on some,
 * delivered to an AD user or group, optionally for the local network only. An address is named in the URL as
 * `local@domain`, `local@*` (the all-domains entry) or `local` (every entry of that local part).
 */
import type { PseudonymInput } from '../../settings/store.js';
import { notFound } from '../errors.js';
import { checkApiReferences } from '../references.js';
import type { AdminDeps, App } from '../types.js';

function split(address: string): { localPart: string; domain?: string } {
  const at = address.lastIndexOf('@');
  if (at < 0) return { localPart: address };
  return { localPart: address.slice(0, at), domain: address.slice(at + 1) === '*' ? 'all' : address.slice(at + 1) };
}

export function addressesRoutes(app: App, deps: AdminDeps): void {
  const { settings } = deps;

  app.get('/api/addresses', async (req) => {
    const { target } = req.query as { target?: string };
    const all = settings.listPseudonyms();
    const t = target?.toLowerCase();
    return { addresses: t ? all.filter((p) => p.target.name.toLowerCase() === t) : all };
  });

  app.get('/api/addresses/:address', async (req) => {
    const { address } = req.params as { address: string };
    const { localPart, domain } = split(address.toLowerCase());
    const found = settings
      .listPseudonyms()
      .filter((p) => p.localPart === localPart && (domain === undefined || (domain === 'all' ? p.domain === null : p.domain === domain)));
    if (!found.length) throw notFound(`no address ${address}`);
    return { addresses: found };
  });

  app.post(
    '/api/addresses',
    {
      schema: {
        body: {
          type: 'object',
          required: ['localPart', 'target'],
          properties: {
            localPart: { type: 'string' },
            domains: { anyOf: [{ type: 'string', enum: ['all'] }, { type: 'array', items: { type: 'string' }, minItems: 1 }] },
            target: {
              type: 'object',
              required: ['kind', 'name'],
              properties: { kind: { type: 'string', enum: ['user', 'group'] }, name: { type: 'string' } },
              additionalProperties: false,
            },
            localNetworkOnly: { type: 'boolean' },
          },
          additionalProperties: false,
        },
      },
    },
    async (req, reply) => {
      const body = req.body as Omit<PseudonymInput, 'domains'> & { domains?: PseudonymInput['domains'] };
      settings.validatePseudonym({ ...body, domains: body.domains ?? 'all' });
      const { kind, name } = body.target;
      await checkApiReferences(deps, req, reply, [
        kind === 'user' ? { kind: 'user', field: 'target.name', login: name } : { kind: 'group', field: 'target.name', name },
      ]);
      const added = await settings.apply(() => settings.addPseudonym({ ...body, domains: body.domains ?? 'all' }));
      deps.log.info({ addresses: added.map((p) => p.address), by: req.admin }, 'admin: address added');
      return reply.code(201).send({ addresses: added });
    },
  );

  app.delete('/api/addresses/:address', async (req) => {
    const { address } = req.params as { address: string };
    const { localPart, domain } = split(address);
    const removed = await settings.apply(() => settings.removePseudonym(localPart, domain));
    if (!removed.length) throw notFound(`no address ${address}`);
    deps.log.info({ addresses: removed.map((p) => p.address), by: req.admin }, 'admin: address removed');
    return { removed };
  });
}
