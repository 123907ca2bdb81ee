/**
 * `postern user out-of-office LOGIN`: the out-of-office IT sets for a user (issue 15), the CLI side of
 * `/api/users/{login}/out-of-office`. With --text it sets (replaces) it, with --clear it clears it, with neither it
 * shows it. The same zod schema as the API checks the input. The user's own Sieve scripts are never touched.
 */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import type { CliContext } from './context.js';
import { EXIT } from '../lib/errors.js';
import { normalizeLogin } from '../settings/validate.js';
import { outOfOfficeInput, outOfOfficeView } from '../sieve/out-of-office.js';
import { SieveState, type OutOfOffice } from '../sieve/state.js';
import { action, checkCliReferences, CliExit } from './settings.js';

function describe(o: OutOfOffice & { active: boolean }): string[] {
  return [
    `out-of-office for ${o.login}: ${o.active ? 'answering now' : 'not answering now'}`,
    `  from: ${o.start ?? 'now'}`,
    `  until: ${o.end ?? 'cleared'}`,
    `  subject: ${o.subject ?? '"Auto: " + the original subject'}`,
    `  one reply per sender every ${o.days} day${o.days === 1 ? '' : 's'}`,
    `  set ${o.updatedAt}${o.updatedBy ? ` by ${o.updatedBy}` : ''}`,
    '  text:',
    ...o.text.split(/\r?\n/).map((l) => `    ${l}`),
  ];
}

function openState(ctx: CliContext): SieveState {
  const dataDir = ctx.config().dataDir;
  let s: SieveState;
  try {
    s = SieveState.open(dataDir);
  } catch (err) {
    throw new CliExit(EXIT.no, `cannot open the sieve database in ${dataDir}: ${(err as Error).message}`);
  }
  ctx.onClose(() => s.close());
  return s;
}

export function registerOutOfOfficeCommands(program: Command, ctx: CliContext, setCode: (c: number) => void): void {
  const user = program.commands.find((c) => c.name() === 'user') ?? program.command('user');
  user
    .command('out-of-office')
    .description("show, set or clear the out-of-office reply IT sets for a user (the user's own Sieve scripts are not touched)")
    .argument('<login>', 'sAMAccountName, any case')
    .option('--start <date>', 'ISO 8601 date or date-time from which replies are sent (default: now)')
    .option('--end <date>', 'ISO 8601 date (that whole day included) or date-time after which replies stop (default: until cleared)')
    .option('--subject <text>', 'subject of the reply (default: "Auto: " and the original subject)')
    .option('--text <text>', 'the reply text; sets the out-of-office')
    .option('--text-file <file>', 'read the reply text from FILE (UTF-8)')
    .option('--days <n>', 'days before the same sender is answered again (default 7)')
    .option('--clear', 'clear the out-of-office')
    .option('--force', 'accept a login the directory does not know (an AD account about to be created)')
    .option('--json', 'print JSON')
    .action(
      action(
        ctx,
        setCode,
        async (
          login: string,
          opts: { start?: string; end?: string; subject?: string; text?: string; textFile?: string; days?: string; clear?: boolean; force?: boolean; json?: boolean },
        ) => {
          normalizeLogin(login); // refuses `*`, `a)(|(x=*` … before the directory is asked
          const setting = opts.text !== undefined || opts.textFile !== undefined;
          const other = opts.start ?? opts.end ?? opts.subject ?? opts.days;
          if (opts.clear && (setting || other !== undefined)) throw new CliExit(EXIT.usage, '--clear goes alone');
          if (!setting && other !== undefined) throw new CliExit(EXIT.usage, 'give the reply with --text or --text-file');
          if (opts.text !== undefined && opts.textFile !== undefined) throw new CliExit(EXIT.usage, '--text or --text-file, not both');
          const state = openState(ctx);
          if (opts.clear) {
            const had = state.clearOutOfOffice(login);
            ctx.out(had ? `out-of-office for ${login.toLowerCase()} cleared` : `no out-of-office was set for ${login.toLowerCase()}`);
            return;
          }
          if (!setting) {
            const o = state.getOutOfOffice(login);
            if (!o) {
              ctx.out(opts.json ? 'null' : `no out-of-office set for ${login.toLowerCase()}`);
              return EXIT.no;
            }
            ctx.out(opts.json ? JSON.stringify(outOfOfficeView(o), null, 2) : describe(outOfOfficeView(o)).join('\n'));
            return;
          }
          let text = opts.text;
          if (opts.textFile !== undefined) {
            try {
              text = readFileSync(opts.textFile, 'utf8');
            } catch (err) {
              throw new CliExit(EXIT.no, `--text-file ${opts.textFile}: ${(err as Error).message}`);
            }
          }
          if (opts.days !== undefined && !/^\d+$/.test(opts.days.trim())) throw new CliExit(EXIT.usage, `--days: expected a whole number, got ${JSON.stringify(opts.days)}`);
          const parsed = outOfOfficeInput.safeParse({
            ...(opts.start !== undefined ? { start: opts.start } : {}),
            ...(opts.end !== undefined ? { end: opts.end } : {}),
            ...(opts.subject !== undefined ? { subject: opts.subject } : {}),
            text,
            ...(opts.days !== undefined ? { days: Number(opts.days) } : {}),
          });
          if (!parsed.success) {
            const issue = parsed.error.issues[0];
            const option = { start: '--start', end: '--end', subject: '--subject', text: '--text', days: '--days' }[String(issue.path[0])] ?? 'input';
            throw new CliExit(EXIT.usage, `${option}: ${issue.message}`);
          }
          await checkCliReferences(ctx, [{ kind: 'user', field: 'login', login }], opts.force);
          const b = parsed.data;
          const o = state.setOutOfOffice({
            login,
            ...(b.start ? { start: b.start } : {}),
            ...(b.end ? { end: b.end } : {}),
            ...(b.subject != null ? { subject: b.subject } : {}),
            text: b.text,
            days: b.days,
            updatedBy: `cli:${process.env.SUDO_USER ?? process.env.USER ?? 'unknown'}`,
          });
          ctx.out(opts.json ? JSON.stringify(outOfOfficeView(o), null, 2) : describe(outOfOfficeView(o)).join('\n'));
        },
      ),
    );
}
