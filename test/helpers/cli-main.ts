/**
 * The CLI run in this process (src/main.ts `main`) on a throw-away config: `useCliConfig` writes a config naming a
 * fresh dataDir and the fixture directory (plus any `extraYaml`), points POSTERN_CONFIG at it for the file's tests
 * and puts the variable back after them; `runCli` runs one command line and collects what it printed.
 */
import { after, before } from 'node:test';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../src/main.ts';
import { PACKAGE_ROOT } from '../../src/config/load.ts';

export interface CliConfig {
  /** The temp directory holding the config (and anything else the test writes). */
  root: string;
  dataDir: string;
}

/** Registers the file's before/after hooks; the returned object is filled in once `before` has run. */
export function useCliConfig(prefix: string, extraYaml = ''): CliConfig {
  const cfg: CliConfig = { root: '', dataDir: '' };
  let saved: string | undefined;
  before(() => {
    cfg.root = mkdtempSync(join(tmpdir(), prefix));
    cfg.dataDir = join(cfg.root, 'data');
    const file = join(cfg.root, 'postern.yaml');
    writeFileSync(
      file,
      `dataDir: ${JSON.stringify(cfg.dataDir)}\ndirectory:\n  type: ldif\n  file: ${JSON.stringify(join(PACKAGE_ROOT, 'fixtures/ad/corp.ldif'))}\n` + extraYaml,
    );
    saved = process.env.POSTERN_CONFIG;
    process.env.POSTERN_CONFIG = file;
  });
  after(() => {
    if (saved === undefined) delete process.env.POSTERN_CONFIG;
    else process.env.POSTERN_CONFIG = saved;
    rmSync(cfg.root, { recursive: true, force: true });
  });
  return cfg;
}

/** One command line through `main`; `stdin` answers a command that reads standard input. */
export async function runCli(argv: string[], stdin?: () => Promise<string>): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(argv, { out: (l) => out.push(l), err: (l) => err.push(l), ...(stdin ? { stdin } : {}) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}
