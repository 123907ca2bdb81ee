import { Command, CommanderError } from 'commander';
import { ConfigError } from './config/load.js';
import { makeContext, type CliIo } from './cli/context.js';
import { registerConfigCommands } from './cli/config.js';
import { registerDomainCommands } from './cli/domain.js';
import { registerAddressCommands } from './cli/address.js';
import { registerUserCommands } from './cli/user.js';
import { registerOutOfOfficeCommands } from './cli/out-of-office.js';
import { registerMailboxCommands } from './cli/mailbox.js';
import { registerSettingsCommands } from './cli/settings.js';
import { registerDirectoryCommands } from './cli/directory.js';
import { registerServeCommands } from './cli/serve.js';
import { registerQueueCommands } from './cli/queue.js';
import { registerDkimCommands } from './cli/dkim.js';
import { registerTraceCommands } from './cli/trace.js';
import { registerClusterCommands } from './cli/cluster.js';
import { EXIT } from './lib/errors.js';

/**
 * Runs one postern command and returns its exit code. The CLI is a thin layer: each file in src/cli registers
 * its commands, and an action returns the exit code instead of calling process.exit, so tests call main().
 */
export async function main(argv: string[], io: CliIo = {}): Promise<number> {
  const program = new Command('postern')
    .description('Active Directory-integrated mail server')
    .option('-c, --config <file>', 'configuration file (default: $POSTERN_CONFIG, else the embedded defaults)')
    .exitOverride()
    .configureOutput({
      writeOut: (s) => (io.out ?? ((l: string) => process.stdout.write(l + '\n')))(s.replace(/\n$/, '')),
      writeErr: (s) => (io.err ?? ((l: string) => process.stderr.write(l + '\n')))(s.replace(/\n$/, '')),
    });
  const ctx = makeContext(program, io);
  let code: number = EXIT.ok;
  const setCode = (c: number) => {
    code = c;
  };
  registerConfigCommands(program, ctx, setCode);
  registerDomainCommands(program, ctx, setCode);
  registerAddressCommands(program, ctx, setCode);
  registerUserCommands(program, ctx, setCode);
  registerOutOfOfficeCommands(program, ctx, setCode);
  registerMailboxCommands(program, ctx, setCode);
  registerSettingsCommands(program, ctx, setCode);
  registerDirectoryCommands(program, ctx, setCode);
  registerServeCommands(program, ctx, setCode);
  registerQueueCommands(program, ctx, setCode);
  registerDkimCommands(program, ctx, setCode);
  registerTraceCommands(program, ctx, setCode);
  registerClusterCommands(program, ctx, setCode);
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    if (err instanceof ConfigError) {
      ctx.err(`postern: configuration error:\n${err.message}`);
      return EXIT.config;
    }
    throw err;
  } finally {
    await ctx.close();
  }
  return code;
}
