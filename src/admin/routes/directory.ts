/**
 * Users and groups as postern sees them (after the AD mapping rules): addresses, enabled/can-login flags and
 * groups (nested membership expanded); and a flush of the directory cache, so an AD change applies at once.
 */
import type { GroupEntry, UserEntry } from '../../directory/types.js';
import { normalizeLogin } from '../../settings/validate.js';
import { notFound } from '../errors.js';
import type { AdminDeps, App } from '../types.js';

async function userView(deps: AdminDeps, u: UserEntry) {
  const groups = await deps.directory.groupsOf(u);
  return {
    login: u.login,
    dn: u.dn,
    displayName: u.displayName ?? null,
    userPrincipalName: u.userPrincipalName ?? null,
    primaryAddress: u.primaryAddress ?? null,
    addresses: u.addresses,
    enabled: u.enabled,
    canLogin: u.canLogin,
    disabled: u.disabled,
    expired: u.expired,
    locked: u.locked,
    mustChangePassword: u.mustChangePassword,
    groups: groups.map((g) => g.name).sort((a, b) => a.localeCompare(b)),
  };
}

async function groupView(deps: AdminDeps, g: GroupEntry) {
  const members = await deps.directory.members(g);
  return {
    name: g.name,
    dn: g.dn,
    primaryAddress: g.primaryAddress ?? null,
    addresses: g.addresses,
    mailEnabled: g.mailEnabled,
    members: members.map((m) => m.login).sort((a, b) => a.localeCompare(b)),
  };
}

/**
 * The seed's "default addresses" of a user: login@domain on every local domain. In AD the addresses live in
 * mail/proxyAddresses, so these are suggestions for the AD admin: each says whether it is already the user's,
 * free, or taken by another entry (directory or pseudonym).
 */
async function suggestedAddresses(deps: AdminDeps, u: UserEntry) {
  const local = u.login.toLowerCase();
  if (!/^[a-z0-9!#$%&'*+/=?^_`{|}~.-]+$/.test(local) || local.startsWith('.') || local.endsWith('.') || local.includes('..')) return [];
  const mine = new Set(u.addresses.map((a) => a.toLowerCase()));
  const out: { address: string; status: 'yours' | 'free' | 'taken'; takenBy?: string }[] = [];
  for (const d of deps.settings.listDomains().filter((x) => x.type === 'local')) {
    const address = `${local}@${d.name}`;
    if (mine.has(address)) {
      out.push({ address, status: 'yours' });
      continue;
    }
    const p = deps.settings.findPseudonym(address);
    if (p) {
      out.push({ address, status: p.target.kind === 'user' && p.target.name.toLowerCase() === local ? 'yours' : 'taken', takenBy: `${p.target.kind} ${p.target.name}` });
      continue;
    }
    const e = await deps.directory.findAddress(address);
    if (e && e.dn.toLowerCase() !== u.dn.toLowerCase()) out.push({ address, status: 'taken', takenBy: `${e.kind} ${e.kind === 'user' ? e.login : e.name}` });
    else out.push({ address, status: e ? 'yours' : 'free' });
  }
  return out;
}

export function directoryRoutes(app: App, deps: AdminDeps): void {
  const { directory } = deps;

  app.get('/api/directory/users', async () => {
    const users = await directory.listUsers();
    users.sort((a, b) => a.login.toLowerCase().localeCompare(b.login.toLowerCase()));
    return { users: await Promise.all(users.map((u) => userView(deps, u))) };
  });

  app.get('/api/directory/users/:login', async (req) => {
    const { login } = req.params as { login: string };
    const u = await directory.findLogin(normalizeLogin(login));
    if (!u) throw notFound(`no user ${login} in the directory`);
    return { ...(await userView(deps, u)), suggestedAddresses: await suggestedAddresses(deps, u) };
  });

  app.get('/api/directory/groups', async () => {
    const groups = await directory.listGroups();
    groups.sort((a, b) => a.name.toLowerCase().localeCompare(b.name.toLowerCase()));
    return { groups: await Promise.all(groups.map((g) => groupView(deps, g))) };
  });

  app.get('/api/directory/health', async () => directory.health());

  app.post('/api/directory/cache/flush', async (req) => {
    const before = directory.cacheStats().size;
    directory.flush();
    deps.log.info({ entries: before, by: req.admin }, 'admin: directory cache flushed');
    return { flushed: before };
  });
}
