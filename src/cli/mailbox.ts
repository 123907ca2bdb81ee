/**
 * `postern mailbox orphans|erase|export|reconcile` (issue 13): the mailboxes of accounts gone from AD, kept for
 * `mailbox.deletedAccountRetentionDays` and then erased. The same operations as /api/mailboxes/orphaned.
 */
import { createWriteStream, existsSync } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Command } from 'commander';
import { openCore, startCliState, type Core } from '../core.js';
import { FailureDelay } from '../auth/failure-delay.js';
import { isGuid } from '../directory/guid.js';
import { EXIT } from '../lib/errors.js';
import { createLogger } from '../lib/logger.js';
import { exportMaildir } from '../lifecycle/export.js';
import type { MailboxRecord } from '../lifecycle/registry.js';
import type { CliContext } from './context.js';
import { action, CliExit } from './settings.js';

const DAY_MS = 24 * 60 * 60 * 1000;

/**
 * The core of one command. With state postgres it first syncs the registry and the settings from PostgreSQL: the
 * settings.db of the dataDir it is given may be a copy no running server keeps current, and an erase or reconcile
 * must write through to the cluster.
 */
async function core(ctx: CliContext): Promise<Core> {
  const c = openCore(ctx.config(), createLogger(process.env.POSTERN_LOG_LEVEL ?? 'warn'), { failureDelay: new FailureDelay({ baseMs: 0, maxMs: 0 }), asNode: false });
  ctx.onClose(() => c.close());
  await startCliState(c);
  return c;
}

function orphan(c: Core, guid: string): MailboxRecord {
  const g = guid.trim().toLowerCase();
  if (!isGuid(g)) throw new CliExit(EXIT.usage, `not an objectGUID: ${JSON.stringify(guid)} (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx; see postern mailbox orphans)`);
  const r = c.registry.get(g);
  if (!r?.orphanedAt) throw new CliExit(EXIT.no, `no orphaned mailbox ${g}`);
  return r;
}

export function registerMailboxCommands(program: Command, ctx: CliContext, setCode: (c: number) => void): void {
  const mailbox = program.command('mailbox').description('mailboxes of accounts gone from AD (orphaned): list, export, erase');

  mailbox
    .command('orphans')
    .description('list orphaned mailboxes and when each will be erased')
    .option('--json', 'print JSON')
    .action(
      action(ctx, setCode, async (opts: { json?: boolean }) => {
        const c = await core(ctx);
        const days = c.settings.get('mailbox.deletedAccountRetentionDays');
        const list = c.registry.listOrphaned().map((r) => ({ ...r, eraseAfter: new Date(Date.parse(r.orphanedAt!) + days * DAY_MS).toISOString() }));
        if (opts.json) {
          ctx.out(JSON.stringify({ retentionDays: days, mailboxes: list }, null, 2));
          return;
        }
        if (!list.length) {
          ctx.out('no orphaned mailbox');
          return;
        }
        for (const r of list) ctx.out(`${r.guid}  ${r.login}  orphaned ${r.orphanedAt}  erased after ${r.eraseAfter}  (${r.dir})`);
      }),
    );

  mailbox
    .command('export')
    .description('write an orphaned mailbox as a tar of its Maildir')
    .argument('<guid>', 'objectGUID of the account (postern mailbox orphans)')
    .option('-o, --output <file>', 'the tar file to write (default mailbox-<login>-<guid>.tar)')
    .action(
      action(ctx, setCode, async (guid: string, opts: { output?: string }) => {
        const c = await core(ctx);
        const r = orphan(c, guid);
        const dir = join(ctx.config().dataDir, 'mail', r.dir);
        if (!existsSync(join(dir, 'Maildir'))) throw new CliExit(EXIT.no, `mailbox ${r.guid} has no Maildir (nothing was ever delivered)`);
        const file = opts.output ?? `mailbox-${r.login.replace(/[^A-Za-z0-9._-]/g, '_')}-${r.guid}.tar`;
        await pipeline(exportMaildir(dir), createWriteStream(file, { flags: 'wx', mode: 0o600 }));
        ctx.out(`exported ${r.login} (${r.guid}) to ${file}`);
      }),
    );

  mailbox
    .command('erase')
    .description('erase an orphaned mailbox now (its account is gone from AD)')
    .argument('<guid>', 'objectGUID of the account (postern mailbox orphans)')
    .action(
      action(ctx, setCode, async (guid: string) => {
        const c = await core(ctx);
        const r = orphan(c, guid);
        await c.registry.erase(r.guid);
        ctx.out(`erased the mailbox of ${r.login} (${r.guid})`);
      }),
    );

  mailbox
    .command('reconcile')
    .description('check every mailbox against AD now: orphan, restore, erase past the retention')
    .action(
      action(ctx, setCode, async () => {
        const c = await core(ctx);
        const r = await c.lifecycle.reconcile();
        if (r.tempFailed) {
          ctx.err('the directory could not answer: nothing changed');
          return EXIT.tempfail;
        }
        ctx.out(`checked ${r.checked}; orphaned ${r.orphaned.length}, restored ${r.restored.length}, erased ${r.erased.length}`);
        for (const [what, list] of [['orphaned', r.orphaned], ['restored', r.restored], ['erased', r.erased]] as const) for (const g of list) ctx.out(`  ${what} ${g}`);
      }),
    );
}
