/**
 * Logs an admin can grep (issue 12 item 8): no log line for work not done — a filter whose switch is off logs
 * nothing per message, and a user outside `spamtrainers` moving mail into Junk is not logged as "taught spam";
 * `log.format: text` writes the seed's maillog lines, `log.file` / `log.imapFile` the seed's two files, reopened
 * on SIGUSR1 after logrotate moved them (a real `postern serve` process).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ImapFlow } from 'imapflow';
import { waitFor } from '../helpers/wait.ts';
import { ROOT } from '../helpers/cli.ts';
import { imapLogin } from '../helpers/logins.ts';
import { startProcessServer } from '../helpers/process-server.ts';
import type { TestServer } from '../helpers/server.ts';
import { logCapture, message, startSmtpTestServer, transport, waitForEmptyQueue } from './smtp-env.ts';

describe('no log line for work not done', () => {
  let server: TestServer;
  const capture = logCapture();
  before(async () => {
    server = await startSmtpTestServer({}, { logStream: capture.stream } as never);
  });
  after(async () => {
    await server?.close();
  });

  test('filters whose switch is off log nothing per message; a filter that is on does', async (t) => {
    await transport(server, 'smtp').sendMail({ envelope: { from: 'sender@outside.example', to: ['john@example.com'] }, raw: message('filters off') });
    await waitForEmptyQueue(server);
    await waitFor('the queued line', () => capture.lines.find((l) => l.event === 'queued'));
    const stages = capture.lines.filter((l) => l.component === 'filter' && typeof l.stage === 'string').map((l) => l.stage);
    for (const off of ['clamav', 'spamassassin', 'attachments', 'dnsbl', 'blockFrom', 'allowFrom', 'allowTo']) {
      assert.ok(!stages.includes(off), `${off} is off and logged: ${JSON.stringify(stages)}`);
    }
    server.core.settings.set('filter.attachments.executables', true);
    t.after(() => server.core.settings.unset('filter.attachments.executables'));
    await transport(server, 'smtp').sendMail({ envelope: { from: 'sender@outside.example', to: ['john@example.com'] }, raw: message('attachments on') });
    await waitFor('the attachments verdict', () => capture.lines.find((l) => l.component === 'filter' && l.stage === 'attachments'));
  });

  test('a non-member of spamtrainers moving mail into Junk is not logged as "taught spam"', async () => {
    await transport(server, 'smtp').sendMail({ envelope: { from: 'sender@outside.example', to: ['laura.verdi@example.com'] }, raw: message('junk by laura') });
    await server.waitForMail('laura.verdi');
    const c = new ImapFlow({ host: '127.0.0.1', port: server.ports.imaps, secure: true, tls: { rejectUnauthorized: false }, auth: { user: 'laura.verdi', pass: 'Corp!Passw0rd' }, logger: false });
    await c.connect();
    try {
      await c.list();
      await c.mailboxOpen('INBOX');
      const uids = await c.search({ subject: 'junk by laura' }, { uid: true });
      assert.ok(uids && uids.length === 1);
      assert.ok(await c.messageMove(uids, 'Junk', { uid: true }));
    } finally {
      await c.logout();
    }
    await waitFor('the not-taught line', () => capture.lines.find((l) => l.user === 'laura.verdi' && l.msg === 'imap: not taught spam: not a member of spamtrainers'));
    assert.ok(!capture.lines.some((l) => l.user === 'laura.verdi' && l.msg === 'imap: taught spam'));
  });
});

test('log.format text, log.file and log.imapFile: the seed\'s maillog and imap files, reopened on SIGUSR1', { timeout: 90_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'postern-logs-'));
  const file = join(dir, 'postern.yaml');
  writeFileSync(
    file,
    [
      'hostname: mx.example.com',
      `dataDir: ${join(dir, 'var')}`,
      `directory: { type: ldif, file: ${join(ROOT, 'fixtures/ad/corp.ldif')} }`,
      `tls: { cert: ${join(ROOT, 'test/fixtures/tls/localhost.crt')}, key: ${join(ROOT, 'test/fixtures/tls/localhost.key')} }`,
      'listeners:',
      '  smtp: { port: 0, host: 127.0.0.1 }',
      '  submission: false',
      '  smtps: false',
      '  imap: false',
      '  imaps: { port: 0, host: 127.0.0.1 }',
      '  pop3: false',
      '  pop3s: false',
      '  admin: false',
      '  http: false',
      '  https: false',
      '  managesieve: false',
      'auth: { failureDelayMs: 0 }',
      'log: { format: text, file: logs/maillog, imapFile: logs/imap }',
      '',
    ].join('\n'),
  );
  const srv = await startProcessServer(file);
  t.after(() => srv.stop());
  const maillog = join(dir, 'logs/maillog');
  const imaplog = join(dir, 'logs/imap');
  const read = (f: string) => (existsSync(f) ? readFileSync(f, 'utf8') : '');
  // The seed's domains are not configured by a config file: mail for john is refused, which is a transaction too.
  const send = async (subject: string) => {
    await transport({ ports: srv.ports } as never, 'smtp').sendMail({ envelope: { from: 'sender@outside.example', to: ['john@example.com'] }, raw: message(subject) }).catch(() => undefined);
  };
  await send('first');
  const line = await waitFor('a transfer/smtpd line in maillog', () =>
    read(maillog).split('\n').find((l) => / postern\/transfer\/smtpd\[\d+\]: /.test(l)),
  );
  assert.match(line, /^[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d mx postern\/transfer\/smtpd\[\d+\]: /);
  assert.doesNotMatch(read(maillog), /^\{/m, 'text, not JSON');
  assert.equal(await imapLogin(srv.ports.imaps, 'john.smith', 'Corp!Passw0rd'), true);
  const login = await waitFor('the login in the imap file', () => read(imaplog).split('\n').find((l) => / postern\/imap\[\d+\]: login/.test(l)));
  assert.match(login, /user=john\.smith/);
  await waitFor('the logout in the imap file', () => /postern\/imap\[\d+\]: logout/.test(read(imaplog)));
  assert.doesNotMatch(read(maillog), /postern\/imap\[/, 'IMAP lines are not in maillog');

  // logrotate: move the files, signal, and the server writes new ones.
  renameSync(maillog, `${maillog}.1`);
  renameSync(imaplog, `${imaplog}.1`);
  process.kill(srv.pid, 'SIGUSR1');
  await waitFor('the reopened maillog', () => /log files reopened/.test(read(maillog)));
  await send('second');
  await waitFor('a transaction in the new maillog', () => / postern\/transfer\/smtpd\[\d+\]: /.test(read(maillog)));
  assert.equal(await imapLogin(srv.ports.imaps, 'john.smith', 'Corp!Passw0rd'), true);
  await waitFor('a login in the new imap file', () => /postern\/imap\[\d+\]: login/.test(read(imaplog)));
});
