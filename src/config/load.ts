import { accessSync, constants, readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { configSchema, type Config } from './schema.js';

/** The package root: the embedded defaults (fixtures/ad/corp.ldif) are found relative to it. */
export const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

export class ConfigError extends Error {}

export interface LoadedConfig extends Config {
  /** The file read, or undefined for the embedded defaults. */
  source?: string;
}

function formatIssues(issues: z.core.$ZodIssue[], file: string): string {
  return issues
    .map((i) => {
      const key = i.path.length ? i.path.join('.') : '(top level)';
      return `${file}: ${key}: ${i.message}`;
    })
    .join('\n');
}

/** Resolves the relative file paths of a config against the directory of the file that named them. */
function resolvePaths(cfg: Config, base: string): Config {
  const abs = (p: string | undefined) => (p === undefined || isAbsolute(p) ? p : resolve(base, p));
  return {
    ...cfg,
    dataDir: abs(cfg.dataDir)!,
    state: cfg.state.type === 'postgres' && cfg.state.cacheDir ? { ...cfg.state, cacheDir: abs(cfg.state.cacheDir) } : cfg.state,
    directory: {
      ...cfg.directory,
      file: abs(cfg.directory.file),
      bindPasswordFile: abs(cfg.directory.bindPasswordFile),
      tls: { ...cfg.directory.tls, caFile: abs(cfg.directory.tls.caFile) },
    },
    tls: { cert: abs(cfg.tls.cert), key: abs(cfg.tls.key) },
    log: { ...cfg.log, file: abs(cfg.log.file), imapFile: abs(cfg.log.imapFile) },
    srs: { ...cfg.srs, secretFile: abs(cfg.srs.secretFile) },
    sieve: { ...cfg.sieve, before: abs(cfg.sieve.before), globalDir: abs(cfg.sieve.globalDir) },
    auth: { ...cfg.auth, kerberos: cfg.auth.kerberos && { ...cfg.auth.kerberos, keytab: abs(cfg.auth.kerberos.keytab)! } },
  };
}

export function parseConfig(data: unknown, file = '(config)', base = process.cwd()): LoadedConfig {
  const result = configSchema.safeParse(data ?? {});
  if (!result.success) throw new ConfigError(formatIssues(result.error.issues, file));
  return { ...resolvePaths(result.data, base), source: file };
}

/** The address every listener of the embedded defaults binds to. */
export const EMBEDDED_HOST = '127.0.0.1';

/**
 * The embedded defaults run the fixture company of fixtures/ad, whose passwords are printed in the README: its
 * listeners must not be reachable from the network. A real configuration (`--config`) listens where it says.
 */
function loopbackOnly(listeners: Config['listeners']): Config['listeners'] {
  const out: Record<string, unknown> = { ...listeners };
  for (const [role, l] of Object.entries(listeners)) {
    if (l !== false && typeof l === 'object' && l !== null && 'port' in l && (l as { host?: string }).host === undefined) {
      out[role] = { ...l, host: EMBEDDED_HOST };
    }
  }
  return out as Config['listeners'];
}

/**
 * `--config FILE`, else `POSTERN_CONFIG`, else the embedded defaults: the LDIF directory of fixtures/ad and data
 * under ./var, so `npm start` works on a fresh machine with no AD.
 */
export function loadConfig(file?: string): LoadedConfig {
  const path = file ?? process.env.POSTERN_CONFIG;
  if (!path) {
    const cfg = parseConfig({}, '(embedded defaults)', PACKAGE_ROOT);
    // dataDir of the embedded defaults is relative to where the admin runs postern, like any tool's ./var.
    return { ...cfg, listeners: loopbackOnly(cfg.listeners), dataDir: resolve(process.cwd(), 'var'), source: undefined };
  }
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`${path}: cannot read: ${(err as Error).message}`);
  }
  let data: unknown;
  try {
    data = parseYaml(text);
  } catch (err) {
    throw new ConfigError(`${path}: not valid YAML: ${(err as Error).message}`);
  }
  const cfg = parseConfig(data, path, dirname(resolve(path)));
  checkFiles(cfg, path);
  return cfg;
}

/**
 * The files a configuration names must be readable now: a missing CA file or password file is one line naming the
 * key and the path (exit 78), not a stack trace from deep inside the start.
 */
function checkFiles(cfg: Config, file: string): void {
  const named: [string, string | undefined][] = [
    ['directory.file', cfg.directory.type === 'ldif' ? cfg.directory.file : undefined],
    ['directory.tls.caFile', cfg.directory.type === 'ldap' ? cfg.directory.tls.caFile : undefined],
    ['directory.bindPasswordFile', cfg.directory.type === 'ldap' && cfg.directory.bindPassword === undefined ? cfg.directory.bindPasswordFile : undefined],
    ['tls.cert', cfg.tls.cert],
    ['tls.key', cfg.tls.key],
    // A named SRS secret file must exist (the secrets that verify old bounces); only the default one is made.
    ['srs.secretFile', cfg.srs.enabled ? cfg.srs.secretFile : undefined],
  ];
  const problems: string[] = [];
  for (const [key, p] of named) {
    if (p === undefined) continue;
    try {
      accessSync(p, constants.R_OK);
    } catch (err) {
      problems.push(`${file}: ${key}: ${p}: cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
  }
  if (problems.length) throw new ConfigError(problems.join('\n'));
}
