/**
 * `postern user set|show|list`: per-user overrides of the seed's Users > Services tab — custom mailbox quota,
 * custom spam retention, forward (optionally keeping a copy), custom send limits (messages and recipients per hour). Users themselves live in Active Directory.
 */
import type { Command } from 'commander';
import type { CliContext } from './context.js';
import { EXIT } from '../lib/errors.js';
import type { EffectiveUserSettings, UserPatch } from '../settings/store.js';
import { normalizeLogin } from '../settings/validate.js';
import { action, checkCliReferences, CliExit, cliApply, cliSettings } from './settings.js';

/** A whole number ≥ 0, or `default` (null: the global setting applies). */
function countOrDefault(option: string, text: string): number | null {
  if (text.trim().toLowerCase() === 'default') return null;
  if (!/^\d+$/.test(text.trim())) throw new CliExit(EXIT.usage, `${option}: expected a whole number or "default", got ${JSON.stringify(text)}`);
  return Number(text.trim());
}

const perHour = (n: number, what: string) => (n === 0 ? `no ${what} limit` : `${n} ${what}/hour`);

function describe(u: EffectiveUserSettings): string[] {
  const quota = u.quotaMB === 0 ? 'none' : `${u.quotaMB} MB`;
  const retention = u.spamRetentionDays === 0 ? 'kept forever' : `${u.spamRetentionDays} days`;
  return [
    `user ${u.login}`,
    `  quota: ${quota} ${u.quotaCustom ? '(custom)' : '(mailbox.quotaMB)'}`,
    `  spam retention: ${retention} ${u.spamRetentionCustom ? '(custom)' : '(mailbox.spamRetentionDays)'}`,
    `  forward: ${u.forward ? `${u.forward}${u.keepCopy ? ', keeping a copy here' : ', no copy kept here'}` : 'no'}`,
    `  send limit: ${perHour(u.sendLimitMessages, 'messages')} ${u.sendLimitMessagesCustom ? '(custom)' : '(smtp.sendLimit.messagesPerHour)'}, ${perHour(u.sendLimitRecipients, 'recipients')} ${u.sendLimitRecipientsCustom ? '(custom)' : '(smtp.sendLimit.recipientsPerHour)'}`,
  ];
}

export function registerUserCommands(program: Command, ctx: CliContext, setCode: (c: number) => void): void {
  const user = program.command('user').description('per-user mail settings (quota, spam retention, forward)');

  user
    .command('set')
    .description('change the mail settings of a user')
    .argument('<login>', 'sAMAccountName, any case')
    .option('--quota <MB>', 'custom mailbox quota in MB (0 = unlimited), or "default" for mailbox.quotaMB')
    .option('--spam-retention <days>', 'custom spam retention in days (0 = keep), or "default" for mailbox.spamRetentionDays')
    .option('--forward <address>', 'forward every message to ADDRESS')
    .option('--no-forward', 'stop forwarding')
    .option('--keep-copy', 'with a forward: also keep a copy in the mailbox')
    .option('--no-keep-copy', 'with a forward: keep no copy')
    .option('--send-limit-messages <n>', 'messages per hour this user may send (0 = no limit), or "default" for smtp.sendLimit.messagesPerHour')
    .option('--send-limit-recipients <n>', 'recipients per hour this user may send to (0 = no limit), or "default" for smtp.sendLimit.recipientsPerHour')
    .option('--force', 'accept a login the directory does not know (an AD account about to be created)')
    .action(
      action(
        ctx,
        setCode,
        async (
          login: string,
          opts: {
            quota?: string;
            spamRetention?: string;
            forward?: string | false;
            keepCopy?: boolean;
            sendLimitMessages?: string;
            sendLimitRecipients?: string;
            force?: boolean;
          },
        ) => {
          const patch: UserPatch = {};
          if (opts.quota !== undefined) patch.quotaMB = countOrDefault('--quota', opts.quota);
          if (opts.spamRetention !== undefined) patch.spamRetentionDays = countOrDefault('--spam-retention', opts.spamRetention);
          if (opts.sendLimitMessages !== undefined) patch.sendLimitMessages = countOrDefault('--send-limit-messages', opts.sendLimitMessages);
          if (opts.sendLimitRecipients !== undefined) patch.sendLimitRecipients = countOrDefault('--send-limit-recipients', opts.sendLimitRecipients);
          if (opts.forward !== undefined) patch.forward = opts.forward === false ? null : opts.forward;
          if (opts.keepCopy !== undefined) {
            if (opts.forward === false && opts.keepCopy) throw new CliExit(EXIT.usage, '--keep-copy goes with a forward, not --no-forward');
            patch.keepCopy = opts.keepCopy;
          }
          if (!Object.keys(patch).length) {
            throw new CliExit(EXIT.usage, 'nothing to change: give --quota, --spam-retention, --forward, --no-forward, --keep-copy, --send-limit-messages or --send-limit-recipients');
          }
          normalizeLogin(login); // refuses `*`, `a)(|(x=*` … before the directory is asked
          await checkCliReferences(ctx, [{ kind: 'user', field: 'login', login }], opts.force);
          const s = cliSettings(ctx);
          await cliApply(ctx, (st) => st.setUser(login, patch));
          ctx.out(describe(s.effectiveUser(login)).join('\n'));
        },
      ),
    );

  user
    .command('show')
    .description('show the mail settings that apply to a user')
    .argument('<login>')
    .option('--json', 'print JSON')
    .action(
      action(ctx, setCode, (login: string, opts: { json?: boolean }) => {
        normalizeLogin(login); // refuses `*`, `a)(|(x=*` … with a clear message
        const s = cliSettings(ctx);
        const eff = s.effectiveUser(login);
        if (opts.json) {
          ctx.out(JSON.stringify({ ...eff, overrides: s.getUser(login) }, null, 2));
          return;
        }
        ctx.out(describe(eff).join('\n'));
      }),
    );

  user
    .command('list')
    .description('list the users with custom mail settings')
    .option('--json', 'print JSON')
    .action(
      action(ctx, setCode, (opts: { json?: boolean }) => {
        const s = cliSettings(ctx);
        const users = s.listUsers();
        if (opts.json) {
          ctx.out(JSON.stringify(users, null, 2));
          return;
        }
        if (!users.length) {
          ctx.out('no user has custom mail settings');
          return;
        }
        ctx.out(users.map((u) => describe(s.effectiveUser(u.login)).join('\n')).join('\n'));
      }),
    );
}
