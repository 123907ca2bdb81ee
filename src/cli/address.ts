/**
 * `postern address add|list|remove`: the seed's Email > Email addresses page (pseudonyms). An address is a local
 * part on every local domain or on chosen ones, delivered to a user or a group.
 *
 * ADDRESS is written `local@domain` (that domain), `local@*` (every local domain) or a bare `local`: on add that is
 * every local domain unless --domains; on remove it is every entry of that local part.
 */
import type { Command } from 'commander';
import type { CliContext } from './context.js';
import { EXIT } from '../lib/errors.js';
import type { Pseudonym, Settings } from '../settings/store.js';
import { action, checkCliReferences, CliExit, cliApply, cliSettings, formatTable } from './settings.js';

interface AddressArg {
  localPart: string;
  /** undefined: no domain written; 'all': `local@*`. */
  domain?: string;
}

function parseAddressArg(arg: string): AddressArg {
  const at = arg.lastIndexOf('@');
  if (at < 0) return { localPart: arg };
  if (at === 0) throw new CliExit(EXIT.usage, `${JSON.stringify(arg)}: the local part is missing`);
  const domain = arg.slice(at + 1);
  if (domain === '') throw new CliExit(EXIT.usage, `${JSON.stringify(arg)}: the domain is missing (use local@* for every domain)`);
  return { localPart: arg.slice(0, at), domain: domain === '*' ? 'all' : domain };
}

function describe(p: Pseudonym): string {
  const flags = p.localNetworkOnly ? ' (local network only)' : '';
  return `${p.address} → ${p.target.kind} ${p.target.name}${flags}`;
}

function inactive(s: Settings, p: Pseudonym): boolean {
  return p.domain !== null && !s.isLocalDomain(p.domain);
}

export function registerAddressCommands(program: Command, ctx: CliContext, setCode: (c: number) => void): void {
  const address = program.command('address').description('email addresses (pseudonyms) of users and groups');

  address
    .command('add')
    .description('add an address for a user or a group')
    .argument('<address>', 'local@domain, local@* (every local domain) or local (every local domain unless --domains)')
    .option('--user <login>', 'deliver to this user (sAMAccountName)')
    .option('--group <name>', 'deliver to this group')
    .option('--domains <d1,d2>', 'only on these domains (with a bare local part)')
    .option('--local-network-only', 'refuse mail for this address from outside the local network')
    .option('--force', 'accept a user or group the directory does not know (an AD account about to be created)')
    .action(
      action(
        ctx,
        setCode,
        async (arg: string, opts: { user?: string; group?: string; domains?: string; localNetworkOnly?: boolean; force?: boolean }) => {
          if ((opts.user === undefined) === (opts.group === undefined)) {
            throw new CliExit(EXIT.usage, 'give exactly one of --user LOGIN or --group NAME');
          }
          const a = parseAddressArg(arg);
          let domains: string[] | 'all';
          if (opts.domains !== undefined) {
            if (a.domain !== undefined) throw new CliExit(EXIT.usage, `--domains goes with a bare local part, not ${arg}`);
            domains = opts.domains.split(',').map((d) => d.trim()).filter((d) => d !== '');
            if (!domains.length) throw new CliExit(EXIT.usage, '--domains needs at least one domain');
          } else {
            domains = a.domain === undefined || a.domain === 'all' ? 'all' : [a.domain];
          }
          const target = opts.user !== undefined ? { kind: 'user' as const, name: opts.user } : { kind: 'group' as const, name: opts.group! };
          const input = { localPart: a.localPart, domains, target, localNetworkOnly: opts.localNetworkOnly ?? false };
          cliSettings(ctx).validatePseudonym(input);
          await checkCliReferences(
            ctx,
            [target.kind === 'user' ? { kind: 'user', field: 'user', login: target.name } : { kind: 'group', field: 'group', name: target.name }],
            opts.force,
          );
          const s = cliSettings(ctx);
          const added = await cliApply(ctx, (st) => st.addPseudonym(input));
          for (const p of added) ctx.out(`added ${describe(p)}`);
          if (domains === 'all' && !s.listDomains().some((d) => d.type === 'local')) {
            ctx.out('note: no local domain is configured yet, so this address receives nothing until one is added');
          }
        },
      ),
    );

  address
    .command('list')
    .description('list the addresses')
    .option('--json', 'print JSON')
    .action(
      action(ctx, setCode, (opts: { json?: boolean }) => {
        const s = cliSettings(ctx);
        const list = s.listPseudonyms();
        if (opts.json) {
          ctx.out(JSON.stringify(list.map((p) => ({ ...p, active: !inactive(s, p) })), null, 2));
          return;
        }
        if (!list.length) {
          ctx.out('no addresses; add one with: postern address add ADDRESS --user LOGIN');
          return;
        }
        const rows = [['ADDRESS', 'TARGET', 'LOCAL NETWORK ONLY', '']];
        for (const p of list) {
          rows.push([
            p.address,
            `${p.target.kind} ${p.target.name}`,
            p.localNetworkOnly ? 'yes' : 'no',
            inactive(s, p) ? `(inactive: ${p.domain} is not a local domain)` : '',
          ]);
        }
        ctx.out(formatTable(rows).join('\n'));
      }),
    );

  address
    .command('remove')
    .description('remove an address (local@domain, local@*, or local for every entry of that local part)')
    .argument('<address>')
    .action(
      action(ctx, setCode, async (arg: string) => {
        const a = parseAddressArg(arg);
        const removed = await cliApply(ctx, (s) => s.removePseudonym(a.localPart, a.domain));
        if (!removed.length) {
          ctx.err(`postern: no address ${arg}`);
          return EXIT.no;
        }
        for (const p of removed) ctx.out(`removed ${describe(p)}`);
      }),
    );
}
