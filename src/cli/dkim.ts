/**
 * `postern dkim generate|rotate|show|list|remove`: DKIM keys of the sending domains (src/delivery/dkim.ts). `generate`
 * prints the TXT record to publish; mail from the domain is signed from then on. The keys are where the
 * configuration keeps them (src/delivery/dkim-keys.ts): the key files of dataDir, or with state postgres the
 * cluster's table, so a key made here signs on every node.
 */
import type { Command } from 'commander';
import type { CliContext } from './context.js';
import { EXIT } from '../lib/errors.js';
import { DKIM_ALLOWED_BITS, DKIM_DEFAULT_BITS, DkimKeyError, type DkimRecord } from '../delivery/dkim.js';
import { openDkimKeys, rotationSelector, type DkimKeyStore } from '../delivery/dkim-keys.js';
import { createLogger } from '../lib/logger.js';
import { PgState } from '../state/postgres/pool.js';
import { normalizeDomain } from '../settings/validate.js';
import { action, CliExit, formatTable } from './settings.js';

/** The key store of the configuration, closed (with its pool) when the command ends. */
function cliKeys(ctx: CliContext): DkimKeyStore {
  const config = ctx.config();
  const pg = config.state.type === 'postgres' ? new PgState(config.state, createLogger(process.env.POSTERN_LOG_LEVEL ?? 'warn'), 'postern cli') : undefined;
  const keys = openDkimKeys(config, pg);
  ctx.onClose(async () => {
    await keys.close();
    await pg?.close();
  });
  return keys;
}

function printRecord(ctx: CliContext, r: DkimRecord): void {
  ctx.out(`publish this TXT record in the DNS of ${r.domain}:`);
  ctx.out(`  name:  ${r.name}`);
  ctx.out(`  value: ${r.value}`);
  ctx.out('zone file line:');
  ctx.out(r.zoneLine);
}

function recordJson(r: DkimRecord & { path?: string }): Record<string, unknown> {
  return {
    domain: r.domain,
    selector: r.selector,
    bits: r.bits,
    name: r.name,
    value: r.value,
    strings: r.strings,
    zoneLine: r.zoneLine,
    ...(r.path ? { path: r.path } : {}),
  };
}

/** DkimKeyError → exit 1 (exists, not found) or 64 (invalid input). */
function mapError(err: unknown): never {
  if (err instanceof DkimKeyError) throw new CliExit(err.reason === 'invalid' ? EXIT.usage : EXIT.no, err.message);
  throw err;
}

export function registerDkimCommands(program: Command, ctx: CliContext, setCode: (c: number) => void): void {
  const dkim = program.command('dkim').description('DKIM signing keys of the sending domains');

  dkim
    .command('generate')
    .description('make a DKIM key for a domain and print the DNS record to publish')
    .argument('<domain>', 'the From domain to sign for, e.g. corp.example')
    .option('--selector <selector>', 'DNS label of the key (default postern-YYYYMMDD)')
    .option('--bits <n>', `RSA key size: ${DKIM_ALLOWED_BITS.join(', ')}`, String(DKIM_DEFAULT_BITS))
    .option('--force', 'replace the existing key of the domain')
    .option('--json', 'print JSON')
    .action(
      action(ctx, setCode, async (domain: string, opts: { selector?: string; bits: string; force?: boolean; json?: boolean }) => {
        const bits = Number(opts.bits);
        if (!Number.isInteger(bits)) throw new CliExit(EXIT.usage, `--bits ${opts.bits}: expected one of ${DKIM_ALLOWED_BITS.join(', ')}`);
        const r = await cliKeys(ctx).generate(domain, { selector: opts.selector, bits, force: opts.force }).catch(mapError);
        if (opts.json) {
          ctx.out(JSON.stringify({ ...recordJson(r), replaced: r.replaced }, null, 2));
          return;
        }
        ctx.out(`generated a ${r.bits}-bit DKIM key for ${r.domain}, selector ${r.selector}${r.path ? `: ${r.path}` : ' (in the state store)'}`);
        if (r.replaced.length) {
          ctx.out(
            `replaced the key(s) with selector ${r.replaced.join(', ')}; keep their DNS records for a few days, ` +
              'until mail signed with them has been delivered',
          );
        }
        printRecord(ctx, r);
        ctx.out(`mail from ${r.domain} is signed from now on; receivers verify it once the record is published`);
      }),
    );

  dkim
    .command('show')
    .description('print the DNS record of a domain\'s DKIM key')
    .argument('<domain>')
    .option('--json', 'print JSON')
    .action(
      action(ctx, setCode, async (domain: string, opts: { json?: boolean }) => {
        const name = normalizeDomain(domain);
        const r = await cliKeys(ctx).record(name);
        if (!r) throw new CliExit(EXIT.no, `${name} has no DKIM key; make one with: postern dkim generate ${name}`);
        if (opts.json) {
          ctx.out(JSON.stringify(recordJson(r), null, 2));
          return;
        }
        ctx.out(`DKIM key of ${r.domain}: selector ${r.selector}, ${r.bits} bits${r.path ? `, ${r.path}` : ''}`);
        printRecord(ctx, r);
      }),
    );

  dkim
    .command('rotate')
    .description('replace a domain\'s DKIM key with a new one under a new selector and print its DNS record')
    .argument('<domain>')
    .option('--bits <n>', `RSA key size: ${DKIM_ALLOWED_BITS.join(', ')}`, String(DKIM_DEFAULT_BITS))
    .option('--json', 'print JSON')
    .action(
      action(ctx, setCode, async (domain: string, opts: { bits: string; json?: boolean }) => {
        const bits = Number(opts.bits);
        if (!Number.isInteger(bits)) throw new CliExit(EXIT.usage, `--bits ${opts.bits}: expected one of ${DKIM_ALLOWED_BITS.join(', ')}`);
        const keys = cliKeys(ctx);
        const name = normalizeDomain(domain);
        const current = await keys.record(name);
        if (!current) throw new CliExit(EXIT.no, `${name} has no DKIM key to rotate; make one with: postern dkim generate ${name}`);
        const r = await keys.generate(name, { selector: rotationSelector([current.selector]), bits, force: true }).catch(mapError);
        if (opts.json) {
          ctx.out(JSON.stringify({ ...recordJson(r), replaced: r.replaced }, null, 2));
          return;
        }
        ctx.out(`rotated the DKIM key of ${r.domain}: selector ${r.selector} (${r.bits} bits) replaces ${r.replaced.join(', ')}`);
        ctx.out('keep the old record in the DNS for a few days, until mail signed with it has been delivered');
        printRecord(ctx, r);
      }),
    );

  dkim
    .command('remove')
    .description('delete a domain\'s DKIM key: its mail is sent unsigned from then on')
    .argument('<domain>')
    .action(
      action(ctx, setCode, async (domain: string) => {
        const name = normalizeDomain(domain);
        const removed = await cliKeys(ctx).remove(name);
        if (!removed.length) throw new CliExit(EXIT.no, `${name} has no DKIM key`);
        ctx.out(`removed the DKIM key of ${name} (selector ${removed.join(', ')}); mail from ${name} is sent unsigned from now on`);
      }),
    );

  dkim
    .command('list')
    .description('list the domains that have a DKIM key')
    .option('--json', 'print JSON')
    .action(
      action(ctx, setCode, async (opts: { json?: boolean }) => {
        const keys = await cliKeys(ctx).list();
        if (opts.json) {
          ctx.out(JSON.stringify(keys, null, 2));
          return;
        }
        if (!keys.length) {
          ctx.out('no DKIM keys; make one with: postern dkim generate DOMAIN');
          return;
        }
        const rows = [['DOMAIN', 'SELECTOR', 'BITS', 'CREATED', 'FILE']];
        for (const k of keys) rows.push([k.domain, k.selector, String(k.bits || '?'), k.created.toISOString().slice(0, 10), k.path ?? '(state store)']);
        ctx.out(formatTable(rows).join('\n'));
      }),
    );
}
