import type { Command } from 'commander';
import { loadConfig, type LoadedConfig } from '../config/load.js';

/**
 * What a CLI command needs, built lazily so that `postern --help` or a usage error never opens AD or the database.
 * `out`/`err` are injectable so unit tests can run commands in-process.
 */
export interface CliContext {
  config(): LoadedConfig;
  out(line: string): void;
  err(line: string): void;
  /** Resources opened by commands, closed once the command ends. */
  onClose(fn: () => unknown): void;
  /** Reads stdin (for passwords). */
  readStdin(): Promise<string>;
}

export interface CliIo {
  out?: (line: string) => void;
  err?: (line: string) => void;
  stdin?: () => Promise<string>;
}

export function makeContext(program: Command, io: CliIo = {}): CliContext & { close(): Promise<void> } {
  let cfg: LoadedConfig | undefined;
  const closers: (() => unknown)[] = [];
  return {
    config() {
      cfg ??= loadConfig(program.opts().config as string | undefined);
      return cfg;
    },
    out: io.out ?? ((l) => process.stdout.write(l + '\n')),
    err: io.err ?? ((l) => process.stderr.write(l + '\n')),
    onClose: (fn) => closers.push(fn),
    readStdin:
      io.stdin ??
      (async () => {
        const chunks: Buffer[] = [];
        for await (const c of process.stdin) chunks.push(c as Buffer);
        return Buffer.concat(chunks).toString('utf8');
      }),
    async close() {
      for (const fn of closers.reverse()) await fn();
    },
  };
}

/** A command's action returns its exit code (0 ok, 1 no, 75 try later, 78 bad config). */
export type ExitCode = number;
