import type { Command } from 'commander';
import { FailureDelay } from '../auth/failure-delay.js';
import { openCore, type Core } from '../core.js';
import { EXIT, TempFailure } from '../lib/errors.js';
import { createLogger } from '../lib/logger.js';
import type { Resolution } from '../resolver/types.js';
import type { CliContext } from './context.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { WatchHealth } from '../directory/types.js';
import { WATCH_STATE_FILE } from '../directory/watch.js';

/** The core for one CLI command: logs only warnings (to stderr), no login delay (an admin is asking). */
function core(ctx: CliContext): Core {
  const c = openCore(ctx.config(), createLogger(process.env.POSTERN_LOG_LEVEL ?? 'warn'), {
    failureDelay: new FailureDelay({ baseMs: 0, maxMs: 0 }),
  });
  ctx.onClose(() => c.close());
  return c;
}

/** The `--json` shape of `postern directory lookup` (the issue's contract; more fields may be added). */
function readWatchState(file: string): (WatchHealth & { writtenAt: string }) | null {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as WatchHealth & { writtenAt: string };
  } catch {
    return null;
  }
}

export function resolutionJson(r: Resolution): Record<string, unknown> {
  const out: Record<string, unknown> = { address: r.address, result: r.kind, localNetworkOnly: r.localNetworkOnly, bcc: r.bcc };
  switch (r.kind) {
    case 'mailbox':
      Object.assign(out, {
        login: r.user.login,
        dn: r.user.dn,
        primaryAddress: r.user.primaryAddress,
        addresses: r.user.addresses,
        canLogin: r.user.canLogin,
        via: r.via,
        ...(r.forward ? { forward: r.forward } : {}),
      });
      break;
    case 'list':
    case 'shared':
      Object.assign(out, { group: r.group.name, dn: r.group.dn, members: r.members.map((m) => m.login), via: r.via });
      break;
    case 'relay':
      Object.assign(out, { domain: r.domain, nexthop: r.nexthop });
      break;
    case 'external':
      Object.assign(out, { domain: r.domain });
      break;
    case 'invalid':
      Object.assign(out, { reason: r.reason });
      break;
  }
  return out;
}

function describe(r: Resolution): string {
  const flags = [r.localNetworkOnly ? 'local network only' : '', r.bcc.length ? `bcc ${r.bcc.join(', ')}` : ''].filter(Boolean).join('; ');
  const tail = flags ? ` (${flags})` : '';
  switch (r.kind) {
    case 'mailbox':
      return `${r.address}: mailbox of ${r.user.login}${r.forward ? `, forwarded to ${r.forward.address}${r.forward.keepCopy ? ' (copy kept)' : ''}` : ''}${tail}`;
    case 'list':
      return `${r.address}: distribution list ${r.group.name}: ${r.members.map((m) => m.login).join(', ') || '(no enabled members)'}${tail}`;
    case 'shared':
      return `${r.address}: shared folder of group ${r.group.name}, readers: ${r.members.map((m) => m.login).join(', ')}${tail}`;
    case 'relay':
      return `${r.address}: relay domain ${r.domain} via ${r.nexthop}${tail}`;
    case 'external':
      return `${r.address}: external (${r.domain} is not a mail domain of ours)${tail}`;
    case 'invalid':
      return `${r.address}: invalid (${r.reason})`;
  }
}

export function registerDirectoryCommands(program: Command, ctx: CliContext, setCode: (c: number) => void): void {
  const directory = program.command('directory').description('ask the directory and the resolver (like postmap -q)');
  directory
    .command('lookup')
    .argument('<address>')
    .option('--json', 'one JSON object on stdout')
    .option('--from-outside', 'resolve as for mail from outside the local network')
    .description('what happens to mail for ADDRESS; exit 0 resolved, 1 invalid or external, 75 directory unavailable')
    .action(async (address: string, opts: { json?: boolean; fromOutside?: boolean }) => {
      const c = core(ctx);
      try {
        const r = await c.resolver.resolve(address, opts.fromOutside ? { fromLocalNetwork: false } : {});
        ctx.out(opts.json ? JSON.stringify(resolutionJson(r)) : describe(r));
        setCode(r.kind === 'invalid' || r.kind === 'external' ? EXIT.no : EXIT.ok);
      } catch (err) {
        if (!(err instanceof TempFailure)) throw err;
        if (opts.json) ctx.out(JSON.stringify({ address, result: 'tempfail', error: err.message }));
        else ctx.err(`${address}: temporary failure: ${err.message}`);
        setCode(EXIT.tempfail);
      }
    });
  directory
    .command('health')
    .description('state of the domain controllers')
    .action(async () => {
      const c = core(ctx);
      const h = await c.directory.health();
      for (const s of h.servers) ctx.out(`${s.url}: ${s.up ? 'up' : `down until ${s.downUntil}`}${s.lastError ? ` (${s.lastError})` : ''}`);
      // The change watch runs in `postern serve`, which keeps its state in dataDir (directory/watch.ts).
      const watch = readWatchState(join(c.config.dataDir, WATCH_STATE_FILE));
      if (!watch) {
        if (h.backend === 'ldap') ctx.out('watch: no state (postern serve not running on this dataDir, or directory.watch.enabled false)');
        return;
      }
      ctx.out(`watch: ${watch.state} (as of ${watch.writtenAt}), ${watch.changes} changes applied, ${watch.failovers} failovers, poll every ${watch.pollIntervalMs} ms`);
      for (const d of watch.dcs) {
        const parts = [
          `mechanism ${d.mechanism ?? 'none yet'}`,
          d.lastUsn !== undefined ? `last uSN ${d.lastUsn}` : undefined,
          d.invocationId ? `invocationId ${d.invocationId}` : undefined,
          d.deletions ? `deletions by ${d.deletions}` : undefined,
          d.controls ? `DC offers notification ${d.controls.notification ? 'yes' : 'no'}, DirSync ${d.controls.dirSync ? 'yes' : 'no'}` : undefined,
          `${d.changes} changes, ${d.resumes} resumes`,
          d.retryAt ? `retry at ${d.retryAt}` : undefined,
          d.lastError ? `last error: ${d.lastError}` : undefined,
        ];
        ctx.out(`  ${d.url}: ${d.state}; ${parts.filter(Boolean).join('; ')}`);
      }
    });

  const auth = program.command('auth').description('authentication checks (like doveadm auth test)');
  auth
    .command('test')
    .argument('<login>')
    .description('check LOGIN with the password read from stdin; exit 0 ok, 1 invalid or disabled, 75 directory unavailable')
    .action(async (login: string) => {
      const c = core(ctx);
      const password = (await ctx.readStdin()).replace(/\r?\n$/, '');
      const r = await c.auth.authenticate(login, password, { client: 'cli', protocol: 'cli' });
      switch (r.status) {
        case 'ok':
          ctx.out(r.master ? `ok: master ${r.master.login} as user ${r.user.login}` : `ok: ${r.user.login} (${r.user.dn})`);
          return setCode(EXIT.ok);
        case 'invalid':
          ctx.out('invalid: unknown user or wrong password');
          return setCode(EXIT.no);
        case 'disabled':
          ctx.out(`disabled: ${r.user.login} cannot log in (${r.reason})`);
          return setCode(EXIT.no);
        case 'tempfail':
          ctx.out(`temporary failure: ${r.message}`);
          return setCode(EXIT.tempfail);
      }
    });
}
