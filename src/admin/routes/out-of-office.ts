/**
 * The out-of-office IT sets for a user (issue 15: a leaver's auto-reply, someone away without access):
 * `GET|PUT|DELETE /api/users/{login}/out-of-office`. Stored in sieve.db, apart from the user's own Sieve scripts,
 * which it never touches; delivery answers with it as a vacation action run before the user's script.
 */
import { normalizeLogin } from '../../settings/validate.js';
import { outOfOfficeInput, outOfOfficeView } from '../../sieve/out-of-office.js';
import { checkApiReferences } from '../references.js';
import { badRequest, HttpError, notFound } from '../errors.js';
import type { AdminDeps, App } from '../types.js';

export function outOfOfficeRoutes(app: App, deps: AdminDeps): void {
  const state = () => {
    if (!deps.sieveState) throw new HttpError(503, 'out-of-office is not available in this process');
    return deps.sieveState;
  };

  app.get('/api/users/:login/out-of-office', async (req) => {
    const { login } = req.params as { login: string };
    normalizeLogin(login);
    const o = state().getOutOfOffice(login);
    if (!o) throw notFound(`no out-of-office set for ${login}`);
    return outOfOfficeView(o);
  });

  app.put('/api/users/:login/out-of-office', async (req, reply) => {
    const { login } = req.params as { login: string };
    normalizeLogin(login); // refuses `*`, `a)(|(x=*` … before the directory is asked
    const parsed = outOfOfficeInput.safeParse(req.body ?? {});
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw badRequest(`${issue.path.join('.') || 'body'}: ${issue.message}`, issue.path.join('.') || undefined);
    }
    await checkApiReferences(deps, req, reply, [{ kind: 'user', field: 'login', login }]);
    const b = parsed.data;
    const o = state().setOutOfOffice({
      login,
      ...(b.start ? { start: b.start } : {}),
      ...(b.end ? { end: b.end } : {}),
      ...(b.subject != null ? { subject: b.subject } : {}),
      text: b.text,
      days: b.days,
      ...(req.admin ? { updatedBy: req.admin } : {}),
    });
    deps.log.info({ login, start: o.start, end: o.end, by: req.admin }, 'admin: out-of-office set');
    return outOfOfficeView(o);
  });

  app.delete('/api/users/:login/out-of-office', async (req) => {
    const { login } = req.params as { login: string };
    normalizeLogin(login);
    const had = state().clearOutOfOffice(login);
    if (had) deps.log.info({ login, by: req.admin }, 'admin: out-of-office cleared');
    return { login: login.toLowerCase(), cleared: had };
  });
}
