/**
 * The login client autoconfiguration offers (issue 12 item 10): Thunderbird's %EMAILADDRESS% and Autodiscover's
 * LoginName are the address the user typed, so the primary address, the `mail` value and the userPrincipalName
 * must log in on IMAP, POP3 and SMTP against the real Samba AD (CORP.EXAMPLE), as they do against the LDIF
 * directory (test/protocol/admin-autoconfig.test.ts).
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseConfig } from '../../src/config/load.ts';
import { silentLogger } from '../../src/lib/logger.ts';
import { startServer, type Server } from '../../src/server.ts';
import { adDirectory, haveAd, ROOT } from '../helpers/cli.ts';
import { ADDRESS_LOGINS, loginEverywhere } from '../helpers/logins.ts';

const skip = haveAd('AD') ? false : 'needs the Samba DCs: run through test/run.ts';
const PASSWORD = 'Corp!Passw0rd';

describe('address logins against Samba AD', { skip }, () => {
  let server: Server;
  before(async () => {
    const listener = { port: 0, host: '127.0.0.1' };
    const config = parseConfig(
      {
        hostname: 'mx.example.com',
        dataDir: mkdtempSync(join(tmpdir(), 'postern-addr-login-')),
        directory: adDirectory('AD'),
        tls: { cert: join(ROOT, 'test/fixtures/tls/localhost.crt'), key: join(ROOT, 'test/fixtures/tls/localhost.key') },
        listeners: { smtp: false, submission: false, smtps: listener, imap: false, imaps: listener, pop3: false, pop3s: listener, admin: false, http: false, https: false, managesieve: false },
        auth: { failureDelayMs: 0 },
      },
      '(test)',
      ROOT,
    );
    server = await startServer(config, silentLogger);
  });
  after(async () => {
    await server?.close();
  });

  for (const [login, what] of [...ADDRESS_LOGINS, ['john.smith', 'sAMAccountName']] as [string, string][]) {
    it(`${login} (${what}) logs in on IMAP, POP3 and SMTP`, { timeout: 60_000 }, async () => {
      assert.deepEqual(await loginEverywhere(server.ports as never, login, PASSWORD), { imap: true, pop3: true, smtp: true });
    });
  }

  it('a wrong password with an address login is refused everywhere', { timeout: 60_000 }, async () => {
    const r = await loginEverywhere(server.ports as never, 'john.smith@corp.example', 'wrong');
    assert.ok(r.imap !== true && r.pop3 !== true && r.smtp !== true, JSON.stringify(r));
  });
});
