/**
 * `postern domain add|list|show|set|remove`: the seed's Email > Domains page. A domain is delivered to local
 * mailboxes, or relayed to another server (`--relay HOST[:PORT]`). `--imap-referral imap://HOST[:PORT]/` names the
 * IMAP server that holds the domain's mailboxes: its users are referred there at IMAP login (RFC 2221).
 */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import type { CliContext } from './context.js';
import { EXIT } from '../lib/errors.js';
import type { Domain, DomainPatch } from '../settings/store.js';
import { action, checkCliReferences, CliExit, cliApply, cliSettings, formatTable } from './settings.js';

/** The disclaimer text of FILE, or of stdin for `-`. */
async function readDisclaimer(ctx: CliContext, file: string): Promise<string> {
  if (file === '-') return ctx.readStdin();
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new CliExit(EXIT.no, `cannot read the disclaimer file: ${(err as Error).message}`);
  }
}

function describe(d: Domain): string {
  return d.type === 'relay' ? `relayed to ${d.nexthop}` : 'delivered to local mailboxes';
}

function details(d: Domain): string[] {
  const lines = [`domain ${d.name}: ${describe(d)}`];
  lines.push(`  always Bcc: ${d.bcc ?? 'no'}`);
  lines.push(`  disclaimer: ${d.disclaimer ? `${d.disclaimer.replace(/\n+$/, '').split('\n').length} line(s)` : 'no'}`);
  lines.push(`  IMAP referral: ${d.imapReferral ? `${d.imapReferral} (IMAP logins of its users are referred there)` : 'no'}`);
  return lines;
}

export function registerDomainCommands(program: Command, ctx: CliContext, setCode: (c: number) => void): void {
  const domain = program.command('domain').description('mail domains: delivered locally or relayed to another server');

  domain
    .command('add')
    .description('add a mail domain (delivered to local mailboxes unless --relay)')
    .argument('<name>', 'e.g. corp.example')
    .option('--relay <host[:port]>', 'relay mail for this domain to another server instead of delivering it here')
    .option('--bcc <address>', 'always send a hidden copy of mail to this domain to ADDRESS (may be against privacy laws)')
    .option('--disclaimer <file>', 'Markdown text attached to messages sent from this domain (- reads stdin)')
    .option('--imap-referral <url>', 'imap://HOST[:PORT]/ holding this domain\'s mailboxes: refer its users there at IMAP login (RFC 2221)')
    .option('--force', 'accept a --bcc address the directory does not know (an AD account about to be created)')
    .action(
      action(ctx, setCode, async (name: string, opts: { relay?: string; bcc?: string; disclaimer?: string; imapReferral?: string; force?: boolean }) => {
        const disclaimer = opts.disclaimer === undefined ? undefined : await readDisclaimer(ctx, opts.disclaimer);
        if (opts.bcc !== undefined) {
          const adding = opts.relay === undefined ? name.trim().toLowerCase().replace(/\.$/, '') : undefined;
          await checkCliReferences(ctx, [{ kind: 'bcc', field: 'bcc', address: opts.bcc, addingLocalDomain: adding }], opts.force);
        }
        const d = await cliApply(ctx, (s) => s.addDomain({
          name,
          type: opts.relay !== undefined ? 'relay' : 'local',
          nexthop: opts.relay,
          bcc: opts.bcc,
          disclaimer,
          imapReferral: opts.imapReferral,
        }));
        ctx.out(`added ${details(d).join('\n')}`);
      }),
    );

  domain
    .command('list')
    .description('list the mail domains')
    .option('--json', 'print JSON')
    .action(
      action(ctx, setCode, (opts: { json?: boolean }) => {
        const domains = cliSettings(ctx).listDomains();
        if (opts.json) {
          ctx.out(JSON.stringify(domains, null, 2));
          return;
        }
        if (!domains.length) {
          ctx.out('no mail domains; add one with: postern domain add NAME');
          return;
        }
        const rows = [['DOMAIN', 'TYPE', 'NEXT HOP', 'BCC', 'DISCLAIMER', 'IMAP REFERRAL']];
        for (const d of domains) {
          rows.push([d.name, d.type, d.nexthop ?? '-', d.bcc ?? '-', d.disclaimer ? 'yes' : '-', d.imapReferral ?? '-']);
        }
        ctx.out(formatTable(rows).join('\n'));
      }),
    );

  domain
    .command('show')
    .description('show a mail domain, with its disclaimer text')
    .argument('<name>')
    .option('--json', 'print JSON')
    .action(
      action(ctx, setCode, (name: string, opts: { json?: boolean }) => {
        const d = cliSettings(ctx).getDomain(name);
        if (!d) throw new CliExit(EXIT.no, `no domain ${name.toLowerCase()}`);
        if (opts.json) {
          ctx.out(JSON.stringify(d, null, 2));
          return;
        }
        ctx.out(details(d).join('\n'));
        if (d.disclaimer) ctx.out(`\n${d.disclaimer.replace(/\n$/, '')}`);
      }),
    );

  domain
    .command('set')
    .description('change a mail domain')
    .argument('<name>')
    .option('--bcc <address>', 'always send a hidden copy of mail to this domain to ADDRESS')
    .option('--no-bcc', 'stop sending hidden copies')
    .option('--disclaimer <file>', 'Markdown disclaimer text (- reads stdin)')
    .option('--no-disclaimer', 'remove the disclaimer')
    .option('--relay <host[:port]>', 'relay this domain to another server')
    .option('--local', 'deliver this domain to local mailboxes (stop relaying)')
    .option('--imap-referral <url>', 'imap://HOST[:PORT]/ holding this domain\'s mailboxes: refer its users there at IMAP login (RFC 2221)')
    .option('--no-imap-referral', 'let this domain\'s users log in here (stop referring them)')
    .option('--force', 'accept a --bcc address the directory does not know (an AD account about to be created)')
    .action(
      action(
        ctx,
        setCode,
        async (
          name: string,
          opts: { bcc?: string | false; disclaimer?: string | false; relay?: string; local?: boolean; imapReferral?: string | false; force?: boolean },
        ) => {
          if (opts.relay !== undefined && opts.local) throw new CliExit(EXIT.usage, '--relay and --local exclude each other');
          const patch: DomainPatch = {};
          if (opts.bcc !== undefined) patch.bcc = opts.bcc === false ? null : opts.bcc;
          if (opts.disclaimer !== undefined) {
            patch.disclaimer = opts.disclaimer === false ? null : await readDisclaimer(ctx, opts.disclaimer);
          }
          if (opts.relay !== undefined) Object.assign(patch, { type: 'relay', nexthop: opts.relay });
          if (opts.local) Object.assign(patch, { type: 'local', nexthop: null });
          if (opts.imapReferral !== undefined) patch.imapReferral = opts.imapReferral === false ? null : opts.imapReferral;
          if (!Object.keys(patch).length) {
            throw new CliExit(
              EXIT.usage,
              'nothing to change: give --bcc, --no-bcc, --disclaimer, --no-disclaimer, --relay, --local, --imap-referral or --no-imap-referral',
            );
          }
          if (typeof patch.bcc === 'string') {
            const adding = opts.local ? name.trim().toLowerCase().replace(/\.$/, '') : undefined;
            await checkCliReferences(ctx, [{ kind: 'bcc', field: 'bcc', address: patch.bcc, addingLocalDomain: adding }], opts.force);
          }
          const d = await cliApply(ctx, (s) => s.updateDomain(name, patch));
          ctx.out(`changed ${details(d).join('\n')}`);
        },
      ),
    );

  domain
    .command('remove')
    .description('remove a mail domain (mail already received is kept)')
    .argument('<name>')
    .action(
      action(ctx, setCode, async (name: string) => {
        const { domain: d, inactiveAddresses } = await cliApply(ctx, (s) => s.removeDomain(name));
        ctx.out(`removed domain ${d.name}; mail already received is kept`);
        if (inactiveAddresses.length) {
          ctx.out(
            `${inactiveAddresses.length} address(es) of ${d.name} are kept but inactive until the domain is added back ` +
              `(delete them with postern address remove): ${inactiveAddresses.map((p) => p.address).join(', ')}`,
          );
        }
      }),
    );
}
