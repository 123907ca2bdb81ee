/** Runs the postern CLI in-process (main()) or as a real process (bin/postern.js), capturing its output. */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { main } from '../../src/main.ts';
import { runChild } from '../harness/children.ts';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

export interface CliRun {
  code: number;
  out: string;
  err: string;
}

export async function runCli(args: string[], opts: { config: string; stdin?: string }): Promise<CliRun> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(['--config', opts.config, ...args], {
    out: (l) => out.push(l),
    err: (l) => err.push(l),
    stdin: async () => opts.stdin ?? '',
  });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

/**
 * The real executable, as an admin runs it (`npx postern ...`), in its own process group (test/harness/children.ts).
 * A command still running after timeoutMs (default 60 s; these take about a second) is killed, and the result says so.
 */
export async function spawnCli(
  args: string[],
  opts: { config: string; stdin?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number },
): Promise<CliRun> {
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const r = await runChild(process.execPath, [join(ROOT, 'bin/postern.js'), '--config', opts.config, ...args], {
    name: `postern ${args.slice(0, 2).join(' ')}`,
    env: { ...process.env, ...opts.env },
    input: opts.stdin ?? '',
    timeoutMs,
  });
  const err = r.timedOut ? `${r.stderr}\n[spawnCli: killed after ${timeoutMs} ms]` : r.stderr;
  return { code: r.code ?? -1, out: r.stdout.trim(), err: err.trim() };
}

/** Writes a YAML config into a fresh temp dataDir and returns its path. */
export function writeConfig(config: Record<string, unknown>): { file: string; dataDir: string } {
  const dataDir = mkdtempSync(join(tmpdir(), 'postern-test-'));
  const file = join(dataDir, 'postern.yaml');
  writeFileSync(file, stringify({ dataDir, ...config }));
  return { file, dataDir };
}

/** The `directory:` section for a test DC started by test/run.ts ('AD' or 'AD2'). */
export function adDirectory(which: 'AD' | 'AD2', over: Record<string, unknown> = {}): Record<string, unknown> {
  const env = (k: string) => {
    const v = process.env[`POSTERN_TEST_${which}_${k}`];
    if (!v) throw new Error(`POSTERN_TEST_${which}_${k} is not set: run integration tests through test/run.ts`);
    return v;
  };
  return {
    type: 'ldap',
    urls: [env('URL')],
    tls: { caFile: env('CA'), rejectUnauthorized: true },
    baseDN: env('BASE'),
    bindDN: env('BIND_DN'),
    bindPassword: env('BIND_PASSWORD'),
    timeoutMs: 3000,
    connectTimeoutMs: 2000,
    ...over,
  };
}

export const haveAd = (which: 'AD' | 'AD2' = 'AD') => Boolean(process.env[`POSTERN_TEST_${which}_URL`]);
