/**
 * The whole path a user sees: a message sent over SMTP is delivered into the Maildir and read back over POP3 by a
 * real client (curl), over STLS and over implicit TLS, with the same UIDL identity both times.
 */
import assert from 'node:assert/strict';
import { execChild } from '../harness/children.ts';
import { after, before, describe, it } from 'node:test';
import nodemailer from 'nodemailer';
import { startTestServer, type TestServer } from '../helpers/server.ts';

/** curl in its own process group, killed after 60 s (test/harness/children.ts). */
const run = execChild;

describe('SMTP in, POP3 out', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer();
  });
  after(() => server?.close());

  it('a message sent to john@example.com is read with curl over pop3 (STLS) and pop3s', async () => {
    const t = nodemailer.createTransport({ host: '127.0.0.1', port: server.ports.smtp, ignoreTLS: true, name: 'mta.outside.example' });
    await t.sendMail({ from: 'sender@outside.example', to: 'john@example.com', subject: 'pop me', text: 'Line one\n.dot line\n' });
    t.close();
    await server.waitForMail('john.smith');
    const user = ['-u', 'john.smith:Corp!Passw0rd', '-k', '-s', '--max-time', '10'];
    const viaStls = await run('curl', [...user, '--ssl-reqd', `pop3://127.0.0.1:${server.ports.pop3}/1`]);
    assert.match(viaStls.stdout, /Subject: pop me/);
    assert.match(viaStls.stdout, /^\.dot line\r?$/m, 'a leading dot survives byte-stuffing');
    assert.match(viaStls.stdout, /^Delivered-To: john@example.com\r?$/m);
    const uidl1 = await run('curl', [...user, '--ssl-reqd', '-X', 'UIDL', `pop3://127.0.0.1:${server.ports.pop3}/`]);
    const uidl2 = await run('curl', [...user, '-X', 'UIDL', `pop3s://127.0.0.1:${server.ports.pop3s}/`]);
    assert.match(uidl1.stdout, /^1 \d+\.1\r?$/m);
    assert.equal(uidl1.stdout, uidl2.stdout, 'stable UIDLs across listeners');
  });

  it('without TLS the plain POP3 port refuses the password', async () => {
    await assert.rejects(run('curl', ['-u', 'john.smith:Corp!Passw0rd', '-s', '--max-time', '10', `pop3://127.0.0.1:${server.ports.pop3}/1`]));
  });
});
