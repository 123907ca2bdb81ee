/**
 * `postern queue list|flush|delete` (Postfix's mailq, postqueue -f, postsuper -d). The queue files are the truth,
 * so these commands work on the spool directly, with or without a running server: a running server sees a flush
 * (nextAttemptAt = now) and a delete (the files are gone) at its next scan of the spool (queue.scanIntervalSeconds).
 */
import { userInfo } from 'node:os';
import type { Command } from 'commander';
import type { CliContext } from './context.js';
import { EXIT } from '../lib/errors.js';
import { InvalidQueueIdError, parseQueueId } from '../queue/id.js';
import { Spool, type SpoolOptions } from '../queue/spool.js';
import { openSpool, openState } from '../state/index.js';
import { createLogger } from '../lib/logger.js';
import type { QueueEnvelope, QueueRecipient } from '../queue/types.js';
import { action, CliExit, formatTable } from './settings.js';
import { cliTrace } from './trace.js';

/** Who runs the command: the OS account (sudo keeps the admin's name in SUDO_USER). */
function cliUser(): string {
  const sudo = process.env.SUDO_USER;
  let name: string;
  try {
    name = userInfo().username;
  } catch {
    name = String(process.getuid?.() ?? 'unknown');
  }
  return sudo && sudo !== name ? `${sudo} (as ${name})` : name;
}

/** With state postgres the whole cluster's queue (its rows in PostgreSQL); the connection closes with the command. */
function cliSpool(ctx: CliContext, options: SpoolOptions = {}): Spool {
  const config = ctx.config();
  if (config.state.type !== 'postgres') return new Spool(config.dataDir, options);
  const state = openState(config.state, createLogger(process.env.POSTERN_LOG_LEVEL ?? 'warn'), { name: 'postern cli' });
  ctx.onClose(() => state.close());
  return openSpool(config.dataDir, config.queue, state, options);
}

/** Every id checked before anything is changed: one typo must not leave the command half done. */
function parseIds(ids: string[]): string[] {
  try {
    return [...new Set(ids.map(parseQueueId))];
  } catch (err) {
    if (err instanceof InvalidQueueIdError) throw new CliExit(EXIT.usage, `${err.message} (queue ids are 16 letters and digits, see postern queue list)`);
    throw err;
  }
}

function shortTime(iso: string | undefined): string {
  if (!iso) return '-';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function size(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

function byState(e: QueueEnvelope, state: QueueRecipient['state']): QueueRecipient[] {
  return e.recipients.filter((r) => r.state === state);
}

/** What the last attempt said: the first pending recipient's reply, else the first failure's. */
function lastResult(e: QueueEnvelope): string | undefined {
  return (byState(e, 'pending').find((r) => r.lastResult) ?? byState(e, 'failed').find((r) => r.lastResult))?.lastResult;
}

function summary(e: QueueEnvelope) {
  return {
    id: e.id,
    receivedAt: e.receivedAt,
    size: e.size,
    from: e.from,
    attempts: e.attempts,
    nextAttemptAt: e.nextAttemptAt,
    lastAttemptAt: e.lastAttemptAt ?? null,
    lastResult: lastResult(e) ?? null,
    pending: byState(e, 'pending'),
    failed: byState(e, 'failed'),
    delivered: byState(e, 'delivered').length,
  };
}

export function registerQueueCommands(program: Command, ctx: CliContext, setCode: (c: number) => void): void {
  const queue = program.command('queue').description('the mail queue: messages waiting for delivery or retry');

  queue
    .command('list')
    .description('list queued messages with their pending and failed recipients')
    .option('--json', 'print JSON')
    .action(
      action(ctx, setCode, async (opts: { json?: boolean }) => {
        const list = await cliSpool(ctx).list();
        if (opts.json) {
          ctx.out(JSON.stringify(list.map(summary), null, 2));
          return;
        }
        if (!list.length) {
          ctx.out('the mail queue is empty');
          return;
        }
        const lines: string[] = [];
        const header = ['ID', 'ARRIVAL', 'SIZE', 'SENDER', 'ATTEMPTS', 'NEXT ATTEMPT'];
        const rows = list.map((e) => [e.id, shortTime(e.receivedAt), size(e.size), `<${e.from}>`, String(e.attempts), shortTime(e.nextAttemptAt)]);
        const table = formatTable([header, ...rows]);
        lines.push(table[0]);
        let pendingTotal = 0;
        let bytes = 0;
        list.forEach((e, i) => {
          lines.push(table[i + 1]);
          bytes += e.size;
          const shown = [...byState(e, 'pending'), ...byState(e, 'failed')];
          pendingTotal += byState(e, 'pending').length;
          const detail = formatTable(
            shown.map((r) => [`  ${r.state}`, r.address + (r.hidden ? ' (bcc)' : ''), r.lastResult ?? '(not tried yet)']),
          );
          lines.push(...detail);
          const delivered = byState(e, 'delivered').length;
          if (delivered) lines.push(`  (${delivered} recipient${delivered === 1 ? '' : 's'} already delivered)`);
        });
        lines.push(
          `-- ${list.length} message${list.length === 1 ? '' : 's'}, ${size(bytes)}, ${pendingTotal} recipient${pendingTotal === 1 ? '' : 's'} pending`,
        );
        ctx.out(lines.join('\n'));
      }),
    );

  queue
    .command('flush')
    .description('attempt to send now: queued messages (all, or the IDs given) are tried at the next scan of the server')
    .argument('[ids...]', 'queue ids (default: every queued message)')
    .action(
      action(ctx, setCode, async (ids: string[]) => {
        const wanted = parseIds(ids);
        const spool = cliSpool(ctx);
        const targets = wanted.length ? wanted : (await spool.list()).map((e) => e.id);
        if (!wanted.length && !targets.length) {
          ctx.out('the mail queue is empty');
          return;
        }
        const now = new Date().toISOString();
        let flushed = 0;
        let code: number = EXIT.ok;
        for (const id of targets) {
          const e = await spool.modify(id, (env) => {
            env.nextAttemptAt = now;
          });
          if (e) flushed++;
          else if (wanted.length) {
            ctx.err(`postern: no message ${id} in the queue`);
            code = EXIT.no;
          }
        }
        const within = ctx.config().queue.scanIntervalSeconds;
        ctx.out(`flushed ${flushed} message${flushed === 1 ? '' : 's'}; a running server tries ${flushed === 1 ? 'it' : 'them'} within ${within} s`);
        return code;
      }),
    );

  queue
    .command('delete')
    .description('delete queued messages without delivering them and without notifying the sender')
    .argument('[ids...]', 'queue ids')
    .option('--all', 'delete every queued message')
    .action(
      action(ctx, setCode, async (ids: string[], opts: { all?: boolean }) => {
        if (opts.all && ids.length) throw new CliExit(EXIT.usage, 'give queue ids or --all, not both');
        if (!opts.all && !ids.length) throw new CliExit(EXIT.usage, 'give the queue ids to delete, or --all');
        const wanted = parseIds(ids);
        // The message trace records the delete and who made it (the account running the command).
        const spool = cliSpool(ctx, { trace: cliTrace(ctx) });
        const by = `cli:${cliUser()}`;
        const targets = opts.all ? (await spool.list()).map((e) => e.id) : wanted;
        let deleted = 0;
        let code: number = EXIT.ok;
        for (const id of targets) {
          if (await spool.remove(id, by)) deleted++;
          else if (!opts.all) {
            ctx.err(`postern: no message ${id} in the queue`);
            code = EXIT.no;
          }
        }
        ctx.out(`deleted ${deleted} message${deleted === 1 ? '' : 's'}`);
        return code;
      }),
    );
}
