/**
 * The seed's "Mail quota" page, queue size and recent deliveries: every user with mail in the directory (enabled, with an address)
 * and their Maildir usage against the quota that applies to them (custom or mailbox.quotaMB).
 */
import { existsSync } from 'node:fs';
import type { UserEntry } from '../../directory/types.js';
import { userOwner } from '../../store/types.js';
import type { AdminDeps, App } from '../types.js';

const MB = 1024 * 1024;

async function mapLimit<T, R>(items: T[], n: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
  return out;
}

export async function quotaUsage(deps: AdminDeps, users: UserEntry[]) {
  return mapLimit(users, 8, async (u) => {
    const owner = userOwner(u);
    const eff = deps.settings.effectiveUser(u.login);
    // No Maildir yet: nothing delivered, nothing used (and nothing created by looking).
    const usage = existsSync(deps.store.maildirPath(owner))
      ? await deps.mailbox.quota(owner)
      : { usedBytes: 0, limitBytes: eff.quotaMB * MB, messages: 0 };
    return {
      login: u.login,
      displayName: u.displayName ?? null,
      primaryAddress: u.primaryAddress ?? null,
      usedBytes: usage.usedBytes,
      messages: usage.messages,
      /** 0 = no quota. */
      limitBytes: usage.limitBytes,
      quotaCustom: eff.quotaCustom,
      percent: usage.limitBytes > 0 ? Math.round((usage.usedBytes / usage.limitBytes) * 1000) / 10 : null,
    };
  });
}

export async function queueSize(deps: AdminDeps) {
  const list = await deps.spool.list();
  return {
    messages: list.length,
    bytes: list.reduce((n, e) => n + e.size, 0),
    recipientsPending: list.reduce((n, e) => n + e.recipients.filter((r) => r.state === 'pending').length, 0),
    deferred: list.filter((e) => e.attempts > 0).length,
    active: deps.scheduler.size.active,
  };
}

async function sendLimitsSummary(deps: AdminDeps) {
  if (!deps.sendLimits) return { overLimit: [], alerts: [] };
  await deps.sendLimits.fresh().catch(() => undefined);
  const st = deps.sendLimits.status();
  return { overLimit: st.users.filter((u) => u.overLimit), alerts: st.alerts.slice(0, 20) };
}

export function dashboardRoutes(app: App, deps: AdminDeps): void {
  app.get('/api/dashboard', async () => {
    const users = (await deps.directory.listUsers()).filter((u) => u.enabled && u.addresses.length > 0);
    users.sort((a, b) => a.login.toLowerCase().localeCompare(b.login.toLowerCase()));
    const [quota, queue] = await Promise.all([quotaUsage(deps, users), queueSize(deps)]);
    // Messages that left the queue since the server started, newest first (Bcc copies are not shown).
    // Bcc copies that bounced are listed apart: no DSN names them, so this is where an admin sees them.
    return {
      quota,
      queue,
      recentDeliveries: deps.activity?.recentMessages(20) ?? [],
      recentRejections: deps.smtpStats?.recentRejections(20) ?? [],
      bccFailures: { total: deps.activity?.counters.bccFailed ?? 0, recent: deps.activity?.recentBccFailures(20) ?? [] },
      // Accounts that hit their hourly send limit: the first sign of a stolen password (details: GET /api/limits).
      sendLimits: await sendLimitsSummary(deps),
      // Accounts gone from AD whose mailboxes wait for erasure (GET /api/mailboxes/orphaned has the details).
      orphanedMailboxes: deps.lifecycle?.registry.listOrphaned().map((r) => ({ guid: r.guid, login: r.login, orphanedAt: r.orphanedAt! })) ?? [],
    };
  });
}
