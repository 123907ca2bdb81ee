/**
 * Sieve at delivery on the Samba AD DC (issue 15): a user's addresses come from AD, so a message that names the
 * user only by a proxyAddresses alias (envelope to the primary address) is answered by the out-of-office — "direct
 * recipient" (RFC 5230 §4.5) is decided by AD — while a message that names none of them is not. With the real
 * spamd marking mail as spam, a user whose script only flags keeps getting spam in Junk, and spam gets no
 * out-of-office reply (it would be backscatter to a forged sender).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SieveScriptStore } from '../../src/sieve/storage.ts';
import { adminRequest } from '../helpers/admin-call.ts';
import { startAdMailEnv, skipWithoutAdAndFilters, type AdMailEnv } from '../helpers/ad-mail-env.ts';
import type { TestServer } from '../helpers/server.ts';
import type { SmtpSink } from '../helpers/smtp-sink.ts';
import { waitFor } from '../helpers/wait.ts';
import { transport, waitForEmptyQueue } from '../protocol/smtp-env.ts';

const skip = skipWithoutAdAndFilters;

describe('out-of-office and Sieve on AD', { skip }, () => {
  let mailEnv: AdMailEnv;
  let server: TestServer;
  let sink: SmtpSink;

  before(async () => {
    mailEnv = await startAdMailEnv('outside.example', { clamdMs: 30_000, spamdMs: 60_000 });
    ({ server, sink } = mailEnv);
  });

  after(async () => {
    await mailEnv?.close();
  });

  let seq = 0;
  const send = (from: string, rcpt: string, to: string, subject: string) =>
    transport(server, 'smtp').sendMail({
      envelope: { from, to: [rcpt] },
      raw: `From: <${from}>\r\nTo: ${to}\r\nSubject: ${subject}\r\nMessage-ID: <ad${++seq}.${Date.now()}@outside.example>\r\n\r\nHello, this is an ordinary message about the meeting.\r\n`,
    });
  const replies = (rcpt: string) => sink.messages.filter((m) => m.to.includes(rcpt) && /^Auto-Submitted: auto-replied\r$/m.test(m.data.toString('latin1')));

  it('the addresses AD gives the user (proxyAddresses) decide whether the out-of-office answers', async () => {
    const put = await adminRequest(server, 'PUT', '/api/users/john.smith/out-of-office', { body: { text: 'Away this week.' } });
    assert.equal(put.status, 200, put.text);
    // Envelope to the primary address; the To field names the user only by the smtp: proxy address j.smith@.
    await send('alias@outside.example', 'john.smith@example.com', '<J.Smith@example.com>', 'to the alias');
    // Envelope to the user, To naming only someone else: a Bcc or a list copy, not a direct recipient.
    await send('other@outside.example', 'john.smith@example.com', '<team@outside.example>', 'not named');
    await waitFor('the reply to the alias sender', () => replies('alias@outside.example').length === 1, { timeoutMs: 120_000 });
    await waitForEmptyQueue(server, 120_000);
    assert.equal(replies('other@outside.example').length, 0);
    assert.match(replies('alias@outside.example')[0].data.toString('utf8'), /^From: <john\.smith@example\.com>\r$/m, 'From: the primary (SMTP:) address from AD');
  });

  it('spam marked by spamd goes to Junk for a user whose script only flags, and gets no out-of-office reply', async () => {
    const user = await server.core.directory.findLogin('anna.bianchi');
    assert.ok(user?.guid, 'AD gives the objectGUID');
    const owner = { kind: 'user' as const, login: user.login, guid: user.guid };
    const scripts = new SieveScriptStore();
    const home = server.store.homePath(owner);
    await scripts.put(home, 'flags', 'require ["imap4flags"];\naddflag "\\\\Flagged";\n');
    await scripts.setActive(home, 'flags');
    assert.equal((await adminRequest(server, 'PUT', '/api/users/anna.bianchi/out-of-office', { body: { text: 'Away.' } })).status, 200);
    server.core.settings.set('filter.spam.denyThreshold', 1000);
    server.core.settings.set('filter.spam.threshold', -100); // every message is spam now
    try {
      await send('spammer@outside.example', 'anna@example.com', '<anna@example.com>', 'cheap watches');
      const junk = join(server.store.folderPath(owner, 'Junk'), 'cur');
      const file = await waitFor('the spam in Junk', () => existsSync(junk) && readdirSync(junk)[0], { timeoutMs: 120_000 });
      await waitForEmptyQueue(server, 120_000);
      assert.match(file, /:2,F$/, "the user's flag is on the Junk copy");
      assert.match(readFileSync(join(junk, file), 'utf8'), /^X-Spam-Flag: YES\r$/m);
      assert.equal(replies('spammer@outside.example').length, 0, 'no reply to spam');
    } finally {
      server.core.settings.set('filter.spam.threshold', 5);
      server.core.settings.set('filter.spam.denyThreshold', 15);
    }
  });
});
