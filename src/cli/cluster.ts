/**
 * `postern cluster status` (issue 16): the nodes registered in the state store, as `/readyz` lists them. Exit 0 when
 * every listed node beats, 1 when one is gone (killed, or its host down), 75 when PostgreSQL cannot answer, 78 with
 * state sqlite (there is no cluster to show).
 */
import type { Command } from 'commander';
import { EXIT } from '../lib/errors.js';
import { createLogger } from '../lib/logger.js';
import { openState } from '../state/index.js';
import type { CliContext } from './context.js';
import { action, CliExit, formatTable } from './settings.js';

export function registerClusterCommands(program: Command, ctx: CliContext, setCode: (c: number) => void): void {
  const cluster = program.command('cluster').description('the nodes sharing the state store (state: postgres)');
  cluster
    .command('status')
    .description('list the nodes: id, address, version, started, last heartbeat, up or gone')
    .option('--json', 'print JSON')
    .action(
      action(ctx, setCode, async (opts: { json?: boolean }) => {
        const config = ctx.config();
        if (config.state.type !== 'postgres') throw new CliExit(EXIT.config, 'state is sqlite: one node, no cluster (see state: { type: postgres } in the README)');
        const state = openState(config.state, createLogger(process.env.POSTERN_LOG_LEVEL ?? 'warn'), { name: 'postern cli' });
        ctx.onClose(() => state.close());
        const nodes = await state.nodes();
        if (opts.json) ctx.out(JSON.stringify(nodes, null, 2));
        else if (!nodes.length) ctx.out('no node registered');
        else {
          const rows = [
            ['NODE', 'ADDRESS', 'VERSION', 'STARTED', 'HEARTBEAT', 'STATE'],
            ...nodes.map((n) => [n.id, n.address, n.version, n.startedAt, n.heartbeatAt, n.alive ? 'up' : 'gone']),
          ];
          for (const line of formatTable(rows)) ctx.out(line);
        }
        return nodes.every((n) => n.alive) ? EXIT.ok : EXIT.no;
      }),
    );
}
