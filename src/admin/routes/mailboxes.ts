/**
 * Orphaned mailboxes (issue 13): accounts gone from AD whose mailboxes wait `mailbox.deletedAccountRetentionDays`
 * before they are erased. The admin lists them, exports one (a tar of its Maildir) or erases it now, and can run the
 * reconcile at once instead of waiting for the hourly pass.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { isGuid } from '../../directory/guid.js';
import { exportMaildir } from '../../lifecycle/export.js';
import type { MailboxRecord } from '../../lifecycle/registry.js';
import { badRequest, notFound } from '../errors.js';
import type { AdminDeps, App } from '../types.js';

const DAY_MS = 24 * 60 * 60 * 1000;

export function mailboxesRoutes(app: App, deps: AdminDeps): void {
  const lc = deps.lifecycle;
  if (!lc) return;
  const view = (r: MailboxRecord) => {
    const days = deps.settings.get('mailbox.deletedAccountRetentionDays');
    return {
      guid: r.guid,
      login: r.login,
      dir: r.dir,
      orphanedAt: r.orphanedAt!,
      eraseAfter: new Date(Date.parse(r.orphanedAt!) + days * DAY_MS).toISOString(),
    };
  };
  const orphan = (guid: string): MailboxRecord => {
    const g = guid.toLowerCase();
    if (!isGuid(g)) throw badRequest('not an objectGUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)', 'guid');
    const r = lc.registry.get(g);
    // Only orphans: a mailbox whose account exists is not erased or exported from here.
    if (!r?.orphanedAt) throw notFound(`no orphaned mailbox ${g}`);
    return r;
  };

  app.get('/api/mailboxes/orphaned', async () => ({
    retentionDays: deps.settings.get('mailbox.deletedAccountRetentionDays'),
    mailboxes: lc.registry.listOrphaned().map(view),
  }));

  app.post('/api/mailboxes/reconcile', async (req) => {
    const result = await lc.reconcile();
    deps.log.info({ by: req.admin, ...result }, 'admin: mailbox reconcile');
    return result;
  });

  app.get('/api/mailboxes/orphaned/:guid/export', async (req, reply) => {
    const r = orphan((req.params as { guid: string }).guid);
    const dir = join(deps.store.root, r.dir);
    if (!existsSync(join(dir, 'Maildir'))) throw notFound(`mailbox ${r.guid} has no Maildir (nothing was ever delivered)`);
    deps.log.info({ guid: r.guid, login: r.login, by: req.admin }, 'admin: orphaned mailbox exported');
    return reply
      .type('application/x-tar')
      .header('content-disposition', `attachment; filename="mailbox-${r.login.replace(/[^A-Za-z0-9._-]/g, '_')}-${r.guid}.tar"`)
      .send(exportMaildir(dir));
  });

  app.delete('/api/mailboxes/orphaned/:guid', async (req) => {
    const r = orphan((req.params as { guid: string }).guid);
    await lc.registry.erase(r.guid);
    deps.log.warn({ guid: r.guid, login: r.login, by: req.admin }, 'admin: orphaned mailbox erased');
    return { erased: r.guid, login: r.login };
  });
}
