/**
 * Send limits (src/limits): who is at or near their hourly allowance of messages and recipients, the alerts logged,
 * and a reset for a user an admin has dealt with (password changed, or a false alarm). Per-user limits are set
 * with the other per-user settings (PATCH /api/users/{login}: sendLimitMessages, sendLimitRecipients).
 */
import { normalizeLogin } from '../../settings/validate.js';
import type { AdminDeps, App } from '../types.js';

export function limitsRoutes(app: App, deps: AdminDeps): void {
  const limits = deps.sendLimits;
  if (!limits) return;

  app.get(
    '/api/limits',
    { schema: { querystring: { type: 'object', properties: { all: { type: 'boolean', default: false } }, additionalProperties: false } } },
    async (req) => {
      // state postgres: the cluster's counts as they are now, not as of the last refresh.
      await limits.fresh();
      return limits.status({ all: (req.query as { all?: boolean }).all === true });
    },
  );

  app.delete('/api/limits/users/:login', async (req) => {
    const { login } = req.params as { login: string };
    normalizeLogin(login); // refuses `*`, `a)(|(x=*` … with a clear message
    const had = await limits.reset('user', login);
    deps.log.info({ component: 'admin', login, by: req.admin, had }, 'admin: send-limit counters reset');
    return { login: login.toLowerCase(), reset: had };
  });
}
