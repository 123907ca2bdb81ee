import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, loadConfig, parseConfig, PACKAGE_ROOT } from '../../../src/config/load.ts';
import { configJsonSchema } from '../../../src/config/schema.ts';
import { configReferenceMarkdown, REFERENCE_END, REFERENCE_START } from '../../../src/config/reference.ts';
import { writeConfig } from '../../helpers/cli.ts';
import { indexCacheDir } from '../../../src/state/index.ts';

test('schema/config.schema.json matches the zod schema (regenerate with npm run schema)', () => {
  const onDisk = JSON.parse(readFileSync(join(PACKAGE_ROOT, 'schema/config.schema.json'), 'utf8'));
  assert.deepEqual(onDisk, JSON.parse(JSON.stringify(configJsonSchema())));
});

test('the README configuration reference matches the schema (regenerate with npm run docs)', () => {
  const readme = readFileSync(join(PACKAGE_ROOT, 'README.md'), 'utf8');
  const start = readme.indexOf(REFERENCE_START);
  const end = readme.indexOf(REFERENCE_END);
  assert.ok(start >= 0 && end > start, 'README has the reference markers');
  assert.equal(readme.slice(start + REFERENCE_START.length, end).trim(), configReferenceMarkdown().trim());
});

test('the embedded defaults: LDIF directory from fixtures/ad, unprivileged ports, ./var', () => {
  const saved = process.env.POSTERN_CONFIG;
  delete process.env.POSTERN_CONFIG;
  try {
    const cfg = loadConfig();
    assert.equal(cfg.directory.type, 'ldif');
    assert.equal(cfg.directory.file, join(PACKAGE_ROOT, 'fixtures/ad/corp.ldif'));
    assert.equal(cfg.dataDir, join(process.cwd(), 'var'));
    assert.equal(cfg.listeners.smtp && cfg.listeners.smtp.port, 2525);
    assert.equal(cfg.auth.failureDelayMs, 2000);
    // The fixture's passwords are public: every listener of the embedded defaults is on loopback only.
    for (const [role, l] of Object.entries(cfg.listeners)) {
      if (l === false || typeof l !== 'object' || !('port' in l)) continue;
      assert.equal((l as { host?: string }).host, '127.0.0.1', `listeners.${role}.host`);
    }
    // A configuration file still listens on every address unless it says otherwise.
    const fromFile = parseConfig({}).listeners.smtp;
    assert.ok(fromFile !== false);
    assert.equal(fromFile.host, undefined);
  } finally {
    if (saved !== undefined) process.env.POSTERN_CONFIG = saved;
  }
});

test('a bad file names the key and what was expected', () => {
  assert.throws(() => parseConfig({ directory: { type: 'ldap', urls: 'ldaps://dc1' } }, 'x.yaml'), (err: Error) => {
    assert.ok(err instanceof ConfigError);
    assert.match(err.message, /x\.yaml: directory\.urls: .*array/i);
    return true;
  });
  assert.throws(() => parseConfig({ directory: { type: 'ldap', urls: ['ldaps://dc1'] } }, 'x.yaml'), /directory\.baseDN: required when type is ldap/);
  assert.throws(() => parseConfig({ directry: {} }, 'x.yaml'), /x\.yaml: .*directry/);
  assert.throws(() => parseConfig({ auth: { method: 'kerberos' } }, 'x.yaml'), /auth\.realm: required when method is kerberos/);
  assert.throws(() => parseConfig({ directory: { type: 'ldif', file: 'a.ldif', cache: { ttlSeconds: -1 } } }, 'x.yaml'), /directory\.cache\.ttlSeconds/);
});

test('relative paths are resolved against the directory of the config file', () => {
  const { file, dataDir } = writeConfig({ directory: { type: 'ldif', file: 'corp.ldif' } });
  copyFileSync(join(PACKAGE_ROOT, 'fixtures/ad/corp.ldif'), join(dataDir, 'corp.ldif')); // named files must exist
  const cfg = loadConfig(file);
  assert.equal(cfg.directory.file, join(dataDir, 'corp.ldif'));
});

test('a file that is not YAML or cannot be read is a clear error', () => {
  assert.throws(() => loadConfig('/nonexistent/postern.yaml'), /\/nonexistent\/postern\.yaml: cannot read/);
});

test('a file the configuration names that cannot be read is one line naming the key and the path, not a stack trace', async () => {
  const { mkdtempSync, writeFileSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { main } = await import('../../../src/main.ts');
  const dir = mkdtempSync(join(tmpdir(), 'postern-cfg-files-'));
  const file = join(dir, 'postern.yaml');
  writeFileSync(
    file,
    'directory:\n  type: ldap\n  urls: [ldaps://dc1.corp.example:636]\n  tls: { caFile: ad-ca.pem }\n  baseDN: DC=corp,DC=example\n  bindDN: CN=svc\n  bindPassword: x\n',
  );
  assert.throws(() => loadConfig(file), (err: Error) => {
    assert.ok(err instanceof ConfigError);
    assert.equal(err.message, `${file}: directory.tls.caFile: ${join(dir, 'ad-ca.pem')}: cannot read (ENOENT)`);
    return true;
  });
  const errs: string[] = [];
  const code = await main(['--config', file, 'serve'], { out: () => undefined, err: (l) => errs.push(l) });
  assert.equal(code, 78);
  assert.match(errs.join('\n'), /directory\.tls\.caFile: .*ad-ca\.pem: cannot read \(ENOENT\)/);
  assert.doesNotMatch(errs.join('\n'), /\n\s+at /);
});

test('state: sqlite by default; postgres needs a postgres:// URL and gets the pool defaults', () => {
  assert.deepEqual(parseConfig({}).state, { type: 'sqlite' });
  assert.deepEqual(parseConfig({ state: { type: 'postgres', url: 'postgres://postern@db/postern' } }).state, {
    type: 'postgres',
    url: 'postgres://postern@db/postern',
    poolSize: 10,
    connectTimeoutMs: 5000,
    statementTimeoutMs: 15000,
  });
  // The node's copies of the folder index: dataDir/index-cache unless state.cacheDir (relative to the config file).
  const pgState = (extra: object) => ({ dataDir: 'data', state: { type: 'postgres', url: 'postgres://db/x', ...extra } });
  assert.equal(indexCacheDir(parseConfig(pgState({}), 'x.yaml', '/etc/postern')), '/etc/postern/data/index-cache');
  assert.equal(indexCacheDir(parseConfig(pgState({ cacheDir: 'cache' }), 'x.yaml', '/etc/postern')), '/etc/postern/cache');
  assert.equal(indexCacheDir(parseConfig(pgState({ cacheDir: '/var/cache/postern' }), 'x.yaml', '/etc/postern')), '/var/cache/postern');
  assert.throws(() => parseConfig({ state: { type: 'postgres' } }, 'x.yaml'), /x\.yaml: state\.url/);
  assert.throws(() => parseConfig({ state: { type: 'postgres', url: 'mysql://db/x' } }, 'x.yaml'), /state\.url: .*postgres/);
  assert.throws(() => parseConfig({ state: { type: 'sqlite', url: 'postgres://db/x' } }, 'x.yaml'), /x\.yaml: .*url/);
});
