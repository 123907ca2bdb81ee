/**
 * docker/postern.example.yaml starts (issue 12 §11): the configuration docker/compose.yml mounts, with its paths
 * mapped to a temp dir and its compose services (dc, clamd, spamd) mapped to the ones test/run.ts started, is
 * loaded the way `postern serve` loads it (file checks included) and serves: the directory answers over LDAPS with
 * the CA verified, and a message goes through SMTP, clamd and spamd into a mailbox. Docker itself cannot run here;
 * test/unit/docker/compose.test.ts checks the compose file against the same config.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nodemailer from 'nodemailer';
import { parse, stringify } from 'yaml';
import { loadConfig } from '../../src/config/load.ts';
import { silentLogger } from '../../src/lib/logger.ts';
import { startServer, type Server } from '../../src/server.ts';
import { ROOT } from '../helpers/cli.ts';
import { waitFor } from '../helpers/wait.ts';

const env = process.env;
const skip =
  env.POSTERN_TEST_AD_URL && env.POSTERN_TEST_CLAMD_PORT && env.POSTERN_TEST_SPAMD_PORT ? false : 'needs the test DC, clamd and spamd: run through test/run.ts';

/** Every string in a parsed YAML document. */
function strings(v: unknown): string[] {
  if (typeof v === 'string') return [v];
  if (Array.isArray(v)) return v.flatMap(strings);
  if (v && typeof v === 'object') return Object.values(v).flatMap(strings);
  return [];
}

describe('docker/postern.example.yaml', { skip }, () => {
  let server: Server | undefined;
  let dataDir: string;

  before(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'postern-docker-example-'));
    dataDir = join(dir, 'var-lib-postern');
    const example = parse(readFileSync(join(ROOT, 'docker/postern.example.yaml'), 'utf8')) as Record<string, any>;
    const passwordFile = join(dir, 'svc-mail.password');
    writeFileSync(passwordFile, `${env.POSTERN_TEST_AD_BIND_PASSWORD}\n`, { mode: 0o600 });
    // The container's paths → the temp dir; the compose services → the harness's; listeners → port 0.
    example.dataDir = dataDir;
    for (const role of Object.keys(example.listeners)) example.listeners[role] = { port: 0, host: '127.0.0.1' };
    Object.assign(example.directory, {
      urls: [env.POSTERN_TEST_AD_URL],
      bindDN: env.POSTERN_TEST_AD_BIND_DN,
      bindPasswordFile: passwordFile,
      tls: { ...example.directory.tls, caFile: env.POSTERN_TEST_AD_CA, servername: env.POSTERN_TEST_AD_TLS_SERVERNAME },
    });
    example.clamav = { ...example.clamav, host: env.POSTERN_TEST_CLAMD_HOST ?? '127.0.0.1', port: Number(env.POSTERN_TEST_CLAMD_PORT) };
    example.spamassassin = { ...example.spamassassin, host: env.POSTERN_TEST_SPAMD_HOST ?? '127.0.0.1', port: Number(env.POSTERN_TEST_SPAMD_PORT) };
    // Nothing of the container is left: a path or service name the mapping above missed would fail here.
    for (const s of strings(example)) {
      assert.doesNotMatch(s, /^\/(etc|var)\/|^ldaps?:\/\/dc[:/]|^(clamd|spamd|dc)$/, `not mapped: ${s}`);
    }
    const file = join(dir, 'postern.yaml');
    writeFileSync(file, stringify(example));
    server = await startServer(loadConfig(file), silentLogger);
    server.core.settings.addDomain({ name: 'example.com', type: 'local' });
  });

  after(async () => {
    await server?.close();
  });

  it('finds a user in the DC over LDAPS, the DC certificate verified against the configured CA', async () => {
    const r = await server!.core.resolver.resolve('john@example.com');
    assert.equal(r.kind, 'mailbox');
    assert.equal(r.kind === 'mailbox' && r.user.login.toLowerCase(), 'john.smith');
  });

  it('takes a message on SMTP, scans and scores it with clamd and spamd, and delivers it', async () => {
    const t = nodemailer.createTransport({ host: '127.0.0.1', port: server!.ports.smtp, secure: false, tls: { rejectUnauthorized: false }, name: 'mta.outside.example' });
    try {
      const info = await t.sendMail({ envelope: { from: 'sender@outside.example', to: ['john@example.com'] }, from: 'sender@outside.example', to: 'john@example.com', subject: 'from the example config', text: 'Hello.' });
      assert.match(info.response, /^250 /);
    } finally {
      t.close();
    }
    const mail = await waitFor('the message in john.smith\'s INBOX', () => {
      const dir = join(server!.store.folderPath({ kind: 'user', login: 'john.smith' }, 'INBOX'), 'new');
      try {
        const files = readdirSync(dir);
        return files.length ? readFileSync(join(dir, files[0]), 'utf8') : false;
      } catch {
        return false;
      }
    }, { timeoutMs: 30_000 });
    assert.match(mail, /^X-Spam-Status: No, score=/m, 'scored by spamd');
    assert.match(mail, /Subject: from the example config/);
  });
});
