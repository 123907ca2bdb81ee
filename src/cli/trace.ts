/**
 * `postern trace` (Exchange's Get-MessageTrackingLog): the path of messages found by sender, recipient, queue id,
 * Message-ID and time, read from `${dataDir}/trace.db` — with or without a running server (SQLite's WAL lets this
 * process read while the server writes; the server's events of its last fraction of a second may not be there yet).
 */
import type { Command } from 'commander';
import { EXIT } from '../lib/errors.js';
import { InvalidQueueIdError, parseQueueId } from '../queue/id.js';
import { createLogger } from '../lib/logger.js';
import { PgState } from '../state/postgres/pool.js';
import { openTrace, type TraceBackend } from '../trace/open.js';
import { parseTraceTime, TraceTimeError } from '../trace/time.js';
import { DEFAULT_TRACE_LIMIT, MAX_TRACE_LIMIT, type TracePath } from '../trace/types.js';
import type { CliContext } from './context.js';
import { action, CliExit, formatTable } from './settings.js';

/**
 * The trace store of the configuration (trace.db of its dataDir, or the cluster's on PostgreSQL with state
 * postgres), closed when the command ends (pending events are written first).
 */
export function cliTrace(ctx: CliContext): TraceBackend {
  const config = ctx.config();
  const pg = config.state.type === 'postgres' ? new PgState(config.state, createLogger(process.env.POSTERN_LOG_LEVEL ?? 'warn'), 'postern cli') : undefined;
  const store = openTrace(config, pg);
  ctx.onClose(async () => {
    await store.close();
    await pg?.close();
  });
  return store;
}

function value(v: unknown): string {
  if (typeof v === 'string') return /^[^\s"=]+$/.test(v) ? v : JSON.stringify(v);
  return JSON.stringify(v);
}

/** A path for people: the message, then one line per event with its details as key=value. */
export function formatPath(p: TracePath): string[] {
  const head = [`${p.queueId}  from <${p.from ?? ''}>${p.messageId ? `  message-id <${p.messageId}>` : ''}`];
  if (p.recipients.length) head.push(`  to: ${p.recipients.join(', ')}`);
  const rows = p.events.map((e) => [
    `  ${e.at}`,
    e.type,
    [...(e.rcpt ? [`rcpt=${e.rcpt}`] : []), ...Object.entries(e.detail).filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${value(v)}`)].join(' '),
  ]);
  return [...head, ...formatTable(rows)];
}

function time(text: string | undefined, option: string): number | undefined {
  if (text === undefined) return undefined;
  try {
    return parseTraceTime(text);
  } catch (err) {
    if (err instanceof TraceTimeError) throw new CliExit(EXIT.usage, `${option}: ${err.message}`);
    throw err;
  }
}

interface TraceOptions {
  from?: string;
  to?: string;
  id?: string;
  messageId?: string;
  since?: string;
  until?: string;
  limit?: string;
  json?: boolean;
}

export function registerTraceCommands(program: Command, ctx: CliContext, setCode: (c: number) => void): void {
  program
    .command('trace')
    .description('message trace: the path of messages (received, filtered, queued, delivered, relayed, bounced, deleted)')
    .option('--from <address>', 'sender (MAIL FROM), exact address')
    .option('--to <address>', 'recipient, exact address (also one reached through a list or forward)')
    .option('--id <queue-id>', 'queue id')
    .option('--message-id <id>', 'Message-ID, with or without <>')
    .option('--since <time>', 'with events since: ISO date/time or a span back from now (90m, 2h, 3d, 1w)')
    .option('--until <time>', 'with events until: ISO date/time or a span back from now')
    .option('--limit <n>', `at most this many messages, newest first (default ${DEFAULT_TRACE_LIMIT}, at most ${MAX_TRACE_LIMIT})`)
    .option('--json', 'print JSON')
    .action(
      action(ctx, setCode, async (opts: TraceOptions) => {
        let queueId: string | undefined;
        try {
          queueId = opts.id === undefined ? undefined : parseQueueId(opts.id);
        } catch (err) {
          if (err instanceof InvalidQueueIdError) throw new CliExit(EXIT.usage, `--id: ${err.message} (queue ids are 16 letters and digits)`);
          throw err;
        }
        const limit = opts.limit === undefined ? DEFAULT_TRACE_LIMIT : Number(opts.limit);
        if (!Number.isInteger(limit) || limit < 1 || limit > MAX_TRACE_LIMIT) throw new CliExit(EXIT.usage, `--limit: a whole number from 1 to ${MAX_TRACE_LIMIT}`);
        const paths = await cliTrace(ctx).query({
          from: opts.from,
          to: opts.to,
          queueId,
          messageId: opts.messageId,
          since: time(opts.since, '--since'),
          until: time(opts.until, '--until'),
          limit,
        });
        if (opts.json) {
          ctx.out(JSON.stringify(paths, null, 2));
          return paths.length ? EXIT.ok : EXIT.no;
        }
        if (!paths.length) {
          ctx.out('no message matches');
          return EXIT.no;
        }
        ctx.out(paths.map((p) => formatPath(p).join('\n')).join('\n\n'));
        return EXIT.ok;
      }),
    );
}
