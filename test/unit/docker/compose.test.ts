/**
 * docker/ (issue 12 §11). No Docker engine runs on the development machines or in CI, so compose.yml is checked
 * against the configuration it mounts instead of being run: the example config passes the schema; compose.yml
 * names every service, port and volume that config uses; the images' files exist and the DC's entrypoint parses.
 * test/integration/docker-example.test.ts starts the example config itself, against the harness's DC, clamd, spamd.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import { parse } from 'yaml';
import { parseConfig } from '../../../src/config/load.ts';
import { runChild } from '../../harness/children.ts';
import { ROOT } from '../../helpers/cli.ts';

const DOCKER = join(ROOT, 'docker');
const compose = parse(readFileSync(join(DOCKER, 'compose.yml'), 'utf8')) as {
  services: Record<string, { build?: { context: string; dockerfile?: string }; image?: string; ports?: string[]; volumes?: string[] }>;
  volumes: Record<string, unknown>;
};
const exampleText = readFileSync(join(DOCKER, 'postern.example.yaml'), 'utf8');
const config = parseConfig(parse(exampleText), 'docker/postern.example.yaml', '/etc/postern');
const postern = compose.services.postern;
const dockerfile = readFileSync(join(DOCKER, 'Dockerfile'), 'utf8');

/** postern's mounts: container path → source (a named volume or a path relative to docker/). */
const mounts = new Map((postern.volumes ?? []).map((v) => {
  const [source, target] = v.split(':');
  return [target, source] as const;
}));
const mountOf = (path: string) => [...mounts.keys()].find((t) => path === t || path.startsWith(`${t}/`));

test('compose.yml runs postern, a Samba AD DC, clamd and spamd, and every image it builds has its Dockerfile', () => {
  assert.deepEqual(Object.keys(compose.services).sort(), ['clamd', 'dc', 'postern', 'spamd']);
  for (const [name, s] of Object.entries(compose.services)) {
    if (!s.build) {
      assert.ok(s.image, `${name}: an image or a build`);
      continue;
    }
    const file = join(DOCKER, s.build.context, s.build.dockerfile ?? 'Dockerfile');
    assert.ok(existsSync(file), `${name}: ${file}`);
  }
});

test('the example config passes the schema and points at the compose services, not at defaults', () => {
  assert.equal(config.directory.type, 'ldap');
  const services = Object.keys(compose.services);
  for (const url of config.directory.urls ?? []) assert.ok(services.includes(new URL(url).hostname), `directory.urls: ${url} is a compose service`);
  assert.ok(services.includes(config.clamav.host ?? ''), `clamav.host ${config.clamav.host}`);
  assert.equal(config.clamav.socket, undefined, 'clamd is reached over TCP: its socket is in another container');
  assert.ok(services.includes(config.spamassassin.host), `spamassassin.host ${config.spamassassin.host}`);
  // spamd listens where the config looks.
  assert.match(readFileSync(join(DOCKER, 'spamd/Dockerfile'), 'utf8'), new RegExp(`--listen=0\\.0\\.0\\.0:${config.spamassassin.port}\\b`));
});

test('every listener of the example config is published and exposed on its own port', () => {
  const published = new Set((postern.ports ?? []).map((p) => p.split('#')[0].trim()));
  const exposed = new Set(/^EXPOSE (.+)$/m.exec(dockerfile)?.[1].split(/\s+/));
  const listeners = Object.entries(config.listeners).filter(([, l]) => l !== false) as [string, { port: number }][];
  assert.equal(listeners.length, 11, 'all eleven listeners are on');
  for (const [role, l] of listeners) {
    assert.ok(published.has(`${l.port}:${l.port}`), `${role} (${l.port}) is published: ${[...published].join(' ')}`);
    assert.ok(exposed.has(String(l.port)), `${role} (${l.port}) is in EXPOSE`);
  }
});

test('every path the example config names is on a volume postern mounts, and the config is mounted where CMD reads it', () => {
  const cmdConfig = /"--config", "([^"]+)"/.exec(dockerfile)?.[1];
  assert.equal(cmdConfig, '/etc/postern/postern.yaml');
  assert.equal(mounts.get(cmdConfig), './postern.example.yaml');
  const paths: [string, string | undefined][] = [
    ['dataDir', config.dataDir],
    ['directory.tls.caFile', config.directory.tls.caFile],
    ['directory.bindPasswordFile', config.directory.bindPasswordFile],
    ['tls.cert', config.tls.cert],
    ['tls.key', config.tls.key],
    ['srs.secretFile', config.srs.secretFile],
    ['log.file', config.log.file],
    ['log.imapFile', config.log.imapFile],
  ];
  for (const [key, p] of paths) {
    if (p === undefined) continue;
    assert.ok(posix.isAbsolute(p), `${key}: ${p}`);
    const m = mountOf(p);
    assert.ok(m, `${key} ${p} is on a mounted volume (${[...mounts.keys()].join(', ')})`);
    const source = mounts.get(m)!;
    if (!source.startsWith('.')) assert.ok(source in compose.volumes, `volume ${source} is declared`);
  }
  assert.equal(mountOf(config.dataDir), '/var/lib/postern');
});

test('the DC hands postern the CA and the password file the config names, on the shared volume', () => {
  const dc = compose.services.dc;
  const shared = (dc.volumes ?? []).map((v) => v.split(':')).find(([, target]) => target === '/shared');
  assert.ok(shared, 'the dc mounts a volume at /shared');
  const entrypoint = readFileSync(join(DOCKER, 'samba-dc/entrypoint.sh'), 'utf8');
  for (const file of [config.directory.tls.caFile!, config.directory.bindPasswordFile!]) {
    const m = mountOf(file)!;
    assert.equal(mounts.get(m), shared[0], `${file} is on the volume the dc writes`);
    assert.ok(entrypoint.includes(`/shared/${file.slice(m.length + 1)}`), `the entrypoint writes /shared/${file.slice(m.length + 1)}`);
  }
  // The search account the config binds as is the one the entrypoint creates.
  assert.match(config.directory.bindDN ?? '', /^CN=svc-mail,/);
  assert.match(entrypoint, /samba-tool user create svc-mail /);
});

test('the DC entrypoint is valid sh', async () => {
  const r = await runChild('sh', ['-n', join(DOCKER, 'samba-dc/entrypoint.sh')], { timeoutMs: 10_000 });
  assert.equal(r.code, 0, r.stderr);
});

test('.dockerignore keeps node_modules, var/ and .git out of the build context', () => {
  const ignored = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  for (const p of ['node_modules', 'var', '.git']) assert.ok(ignored.includes(p), `${p} in .dockerignore`);
});
