import type { Command } from 'commander';
import { configJsonSchema } from '../config/schema.js';
import { configReferenceMarkdown } from '../config/reference.js';
import type { CliContext } from './context.js';
import { EXIT } from '../lib/errors.js';

export function registerConfigCommands(program: Command, ctx: CliContext, setCode: (c: number) => void): void {
  const config = program.command('config').description('the static configuration file');
  config
    .command('check')
    .description('validate the configuration and print it with defaults filled in')
    .action(() => {
      const cfg = ctx.config();
      const { bindPassword, ...directory } = cfg.directory;
      ctx.out(`configuration ok: ${cfg.source ?? '(embedded defaults)'}`);
      ctx.out(JSON.stringify({ ...cfg, directory: { ...directory, bindPassword: bindPassword ? '***' : undefined } }, null, 2));
      setCode(EXIT.ok);
    });
  config
    .command('schema')
    .description('print the JSON Schema of the configuration file')
    .action(() => {
      ctx.out(JSON.stringify(configJsonSchema(), null, 2));
    });
  config
    .command('reference')
    .description('print the configuration reference as a Markdown table (the README section)')
    .action(() => {
      ctx.out(configReferenceMarkdown());
    });
}
