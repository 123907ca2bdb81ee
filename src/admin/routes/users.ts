/**
 * Per-user mail settings (the seed's Users > Services tab): custom quota, custom spam retention, forward with or
 * without a copy kept, custom send limits (src/limits). The users themselves live in AD; this is only what postern adds to them.
 */
import type { UserPatch } from '../../settings/store.js';
import { normalizeLogin } from '../../settings/validate.js';
import { checkApiReferences } from '../references.js';
import type { AdminDeps, App } from '../types.js';

const countOrNull = { type: ['integer', 'null'], minimum: 0 };

export function usersRoutes(app: App, deps: AdminDeps): void {
  const { settings } = deps;
  const view = (login: string) => ({ ...settings.effectiveUser(login), overrides: settings.getUser(login) });

  app.get('/api/users', async () => ({ users: settings.listUsers().map((u) => view(u.login)) }));

  app.get('/api/users/:login', async (req) => {
    const { login } = req.params as { login: string };
    normalizeLogin(login); // refuses `*`, `a)(|(x=*` … with a clear message
    return view(login);
  });

  app.patch(
    '/api/users/:login',
    {
      schema: {
        body: {
          type: 'object',
          minProperties: 1,
          properties: {
            quotaMB: countOrNull,
            spamRetentionDays: countOrNull,
            forward: { type: ['string', 'null'] },
            keepCopy: { type: 'boolean' },
            sendLimitMessages: countOrNull,
            sendLimitRecipients: countOrNull,
          },
          additionalProperties: false,
        },
      },
    },
    async (req, reply) => {
      const { login } = req.params as { login: string };
      normalizeLogin(login); // refuses `*`, `a)(|(x=*` … before the directory is asked
      await checkApiReferences(deps, req, reply, [{ kind: 'user', field: 'login', login }]);
      await settings.apply(() => settings.setUser(login, req.body as UserPatch));
      deps.log.info({ login, by: req.admin }, 'admin: user settings changed');
      return view(login);
    },
  );

  app.delete('/api/users/:login', async (req) => {
    const { login } = req.params as { login: string };
    await settings.apply(() =>
      settings.setUser(login, { quotaMB: null, spamRetentionDays: null, forward: null, sendLimitMessages: null, sendLimitRecipients: null }),
    );
    deps.log.info({ login, by: req.admin }, 'admin: user settings reset');
    return view(login);
  });
}
