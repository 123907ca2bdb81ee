/**
 * `postern settings get|set|unset|list`, and what the other settings commands (domain, address, user) share:
 * opening the settings database of the configured dataDir once per command, and mapping refusals to exit codes.
 */
import type { Command } from 'commander';
import type { CliContext } from './context.js';
import { EXIT, TempFailure } from '../lib/errors.js';
import { openSettings, type Settings } from '../settings/store.js';
import { SettingsError } from '../settings/errors.js';
import { assertSettingKey, parseSettingText, SETTING_DEFS, type SettingDef, type SettingKey } from '../settings/keys.js';
import { checkReferences, UnknownReferenceError, type Reference } from '../settings/references.js';
import { createDirectory, type CachedDirectory } from '../directory/index.js';
import { createLogger } from '../lib/logger.js';
import { openState, type StateStore } from '../state/index.js';

/** Ends a command with an exit code and a message for stderr. */
export class CliExit extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

const opened = new WeakMap<CliContext, Settings>();

/** The settings store of `ctx.config().dataDir`, opened on first use and closed when the command ends. */
export function cliSettings(ctx: CliContext): Settings {
  let s = opened.get(ctx);
  if (!s) {
    const dataDir = ctx.config().dataDir;
    try {
      s = openSettings(dataDir);
    } catch (err) {
      if (err instanceof TempFailure) throw err;
      throw new CliExit(EXIT.no, `cannot open the settings database in ${dataDir}: ${(err as Error).message}`);
    }
    const settings = s;
    opened.set(ctx, settings);
    ctx.onClose(() => settings.close());
  }
  return s;
}

const states = new WeakMap<CliContext, Promise<StateStore>>();

/**
 * Runs a change of the settings and resolves once it is stored where the server reads it. With state postgres
 * that is PostgreSQL (settings.db is only this node's copy: a change written there alone would be replaced by the
 * next reload); PostgreSQL unreachable → TempFailure → exit 75.
 */
export async function cliApply<T>(ctx: CliContext, fn: (s: Settings) => T): Promise<T> {
  const s = cliSettings(ctx);
  const config = ctx.config();
  if (config.state.type === 'postgres') {
    let started = states.get(ctx);
    if (!started) {
      const state = openState(config.state, createLogger(process.env.POSTERN_LOG_LEVEL ?? 'warn'), { name: 'postern cli' });
      ctx.onClose(() => state.close());
      started = state.start(s).then(() => state);
      states.set(ctx, started);
    }
    await started;
  }
  return s.apply(() => fn(s));
}

const directories = new WeakMap<CliContext, CachedDirectory>();

/**
 * Checks what a command names in the directory (Bcc targets, pseudonym targets, user logins; see
 * settings/references.ts) before it changes anything: unknown → exit 1 with the reason, unless `--force`, which
 * prints the reason as a warning and goes on. AD unreachable → exit 75 (or a warning with `--force`).
 */
export async function checkCliReferences(ctx: CliContext, refs: Reference[], force: boolean | undefined): Promise<void> {
  if (!refs.length) return;
  let directory = directories.get(ctx);
  if (!directory) {
    const d = createDirectory(ctx.config().directory, createLogger(process.env.POSTERN_LOG_LEVEL ?? 'warn'));
    directories.set(ctx, d);
    ctx.onClose(() => d.close());
    directory = d;
  }
  const warnings = await checkReferences({ directory, settings: cliSettings(ctx) }, refs, { force: force === true, forceHint: 'use --force' });
  for (const w of warnings) ctx.err(`postern: warning: ${w.message} (accepted with --force)`);
}

/**
 * Wraps a command action: its return value is the exit code (default 0); refusals are printed on stderr and
 * mapped to 64 (invalid input, unknown key), 1 (exists, not found) or 75 (database busy or failing).
 * Configuration errors are left to main(), which prints them and exits 78.
 */
export function action<A extends unknown[]>(
  ctx: CliContext,
  setCode: (c: number) => void,
  fn: (...args: A) => number | void | Promise<number | void>,
): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      const code = await fn(...args);
      setCode(code ?? EXIT.ok);
    } catch (err) {
      if (err instanceof UnknownReferenceError) {
        ctx.err(`postern: ${err.message}`);
        setCode(EXIT.no);
      } else if (err instanceof SettingsError) {
        ctx.err(`postern: ${err.message}`);
        setCode(err.code === 'invalid' || err.code === 'unknown-key' ? EXIT.usage : EXIT.no);
      } else if (err instanceof CliExit) {
        ctx.err(`postern: ${err.message}`);
        setCode(err.code);
      } else if (err instanceof TempFailure) {
        ctx.err(`postern: ${err.message}; try again`);
        setCode(EXIT.tempfail);
      } else {
        throw err;
      }
    }
  };
}

/** Left-aligned columns separated by two spaces; the last column is not padded. */
export function formatTable(rows: string[][]): string[] {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ').trimEnd());
}

/** A value for people: lists comma-separated, null as "(not set)", strings quoted so spaces show, secrets masked. */
function display(d: SettingDef, value: unknown): string {
  if (d.secret) return value === null || value === '' ? '(not set)' : '***';
  if (value === null) return '(not set)';
  if (Array.isArray(value)) return value.length ? value.join(', ') : '(none)';
  if (typeof value === 'string') return JSON.stringify(value);
  return String(value);
}

/** A value for scripts (`settings get KEY`): raw text, lists comma-separated, null as an empty line. */
function raw(value: unknown): string {
  if (value === null || value === undefined) return '';
  if (Array.isArray(value)) return value.join(',');
  return String(value);
}

function masked(d: SettingDef, value: unknown, reveal: boolean): unknown {
  return d.secret && !reveal && value !== null ? '***' : value;
}

export function registerSettingsCommands(program: Command, ctx: CliContext, setCode: (c: number) => void): void {
  const settings = program
    .command('settings')
    .description('runtime settings (mailboxes, messages, filter, SMTP access): take effect without a restart');

  settings
    .command('get')
    .description('print one setting, or all of them')
    .argument('[key]', 'e.g. mailbox.quotaMB; see `postern settings list`')
    .option('--json', 'print JSON')
    .option('--reveal', 'print secret values (the smarthost password) instead of ***')
    .action(
      action(ctx, setCode, (key: string | undefined, opts: { json?: boolean; reveal?: boolean }) => {
        const s = cliSettings(ctx);
        if (key !== undefined) {
          assertSettingKey(key);
          const d = SETTING_DEFS[key] as SettingDef;
          const value = masked(d, s.get(key), opts.reveal ?? false);
          ctx.out(opts.json ? JSON.stringify(value) : raw(value));
          return;
        }
        const entries = s.entries();
        if (opts.json) {
          const obj = Object.fromEntries(entries.map((e) => [e.key, masked(SETTING_DEFS[e.key] as SettingDef, e.value, opts.reveal ?? false)]));
          ctx.out(JSON.stringify(obj, null, 2));
          return;
        }
        ctx.out(
          formatTable(
            entries.map((e) => [
              e.key,
              `= ${opts.reveal && e.secret ? raw(e.value) : display(SETTING_DEFS[e.key] as SettingDef, e.value)}`,
              e.isSet ? '' : '(default)',
            ]),
          ).join('\n'),
        );
      }),
    );

  settings
    .command('set')
    .description('set one or more settings: KEY VALUE [KEY VALUE ...] (checked together)')
    .argument('<key>')
    .argument('<value>', 'yes/no, a number, a comma-separated list, or text; "" clears an optional value')
    .argument('[more...]', 'further KEY VALUE pairs')
    .option('--force', 'accept a queue.alwaysBcc address the directory does not know (an AD account about to be created)')
    .allowUnknownOption() // so a negative number is a value, not an option
    .addHelpText('after', '\nExamples:\n  postern settings set mailbox.quotaMB 2048\n  postern settings set smtp.relayFrom 192.168.1.20,10.0.0.0/24\n  postern settings set smarthost.host smtp.isp.example smarthost.enabled yes')
    .action(
      action(ctx, setCode, async (key: string, value: string, more: string[] = [], opts: { force?: boolean } = {}) => {
        const words = [key, value, ...more];
        if (words.length % 2 !== 0) throw new CliExit(EXIT.usage, `missing the value of ${words[words.length - 1]}`);
        const s = cliSettings(ctx);
        const values: Record<string, unknown> = {};
        for (let i = 0; i < words.length; i += 2) {
          const k = words[i];
          assertSettingKey(k);
          if (k in values) throw new CliExit(EXIT.usage, `${k} given twice`);
          values[k] = parseSettingText(k, words[i + 1]);
        }
        const bcc = values['queue.alwaysBcc'];
        if (typeof bcc === 'string' && bcc !== '') await checkCliReferences(ctx, [{ kind: 'bcc', field: 'queue.alwaysBcc', address: bcc }], opts.force);
        const stored = await cliApply(ctx, (st) => st.setMany(values));
        for (const [k, v] of Object.entries(stored)) ctx.out(`${k} = ${display(SETTING_DEFS[k as SettingKey] as SettingDef, v)}`);
      }),
    );

  settings
    .command('unset')
    .description('forget a setting: its default applies again')
    .argument('<key>')
    .action(
      action(ctx, setCode, async (key: string) => {
        assertSettingKey(key);
        const value = await cliApply(ctx, (s) => s.unset(key));
        ctx.out(`${key} = ${display(SETTING_DEFS[key] as SettingDef, value)} (default)`);
      }),
    );

  settings
    .command('list')
    .description('every setting with its current value, default and description')
    .option('--json', 'print JSON')
    .action(
      action(ctx, setCode, (opts: { json?: boolean }) => {
        const entries = cliSettings(ctx).entries();
        if (opts.json) {
          const out = entries.map((e) => ({ ...e, value: masked(SETTING_DEFS[e.key] as SettingDef, e.value, false) }));
          ctx.out(JSON.stringify(out, null, 2));
          return;
        }
        let page = '';
        const lines: string[] = [];
        for (const e of entries) {
          const d = SETTING_DEFS[e.key] as SettingDef;
          if (e.page !== page) {
            if (page) lines.push('');
            lines.push(`# ${e.page}`);
            page = e.page;
          }
          const state = e.isSet ? `(default ${display(d, e.default)})` : '(default)';
          lines.push(`${e.key} = ${display(d, e.value)}  ${state}`);
          if (e.invalidStored) lines.push(`    ! the stored value is invalid (${e.invalidStored}); the default is used`);
          lines.push(`    ${e.description}`);
          lines.push(`    value: ${e.expect}`);
        }
        ctx.out(lines.join('\n'));
      }),
    );
}
