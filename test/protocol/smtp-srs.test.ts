/**
 * Forwarding keeps SPF working (issue 12 §4, what postsrsd does for Postfix): a forward to another domain leaves
 * with an SRS0 envelope sender in our domain; a bounce to that address is reversed and delivered to the original
 * sender; a forged or expired one is refused at RCPT TO, so the SRS domain relays nothing else.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Srs } from '../../src/delivery/srs.ts';
import type { TestServer } from '../helpers/server.ts';
import type { SmtpSink } from '../helpers/smtp-sink.ts';
import { waitFor } from '../helpers/wait.ts';
import { JOHN, message, rawClient, startWithRemote, transport, waitForEmptyQueue } from './smtp-env.ts';

let server: TestServer;
let sink: SmtpSink;
let close: () => Promise<void>;

before(async () => {
  ({ server, sink, close } = await startWithRemote({
    'remote.example': { MX: [{ exchange: 'mx.remote.example', priority: 10 }] },
    'outside.example': { MX: [{ exchange: 'mx.remote.example', priority: 10 }] },
    'mx.remote.example': { A: ['127.0.0.1'] },
  }));
  server.core.settings.setUser('laura.verdi', { forward: 'laura@remote.example' });
});

after(() => close());

const received = (subject: string) => waitFor(`the remote server to get "${subject}"`, () => sink.messages.find((m) => m.data.toString('latin1').includes(`\r\nSubject: ${subject}\r\n`)));

/** The SRS address of the first test, bounced to by the others. */
let srsSender = '';

describe('SRS', () => {
  test('a forward to another domain leaves with an SRS0 sender in our domain', async () => {
    await transport(server, 'smtp').sendMail({ envelope: { from: 'sender@outside.example', to: ['laura.verdi@example.com'] }, raw: message('forwarded with srs') });
    const m = await received('forwarded with srs');
    assert.deepEqual(m.to, ['laura@remote.example']);
    assert.match(m.from, /^SRS0=[A-Z2-7]{8}=[A-Z2-7]{2}=outside\.example=sender@mx\.example\.com$/i);
    srsSender = m.from;
  });

  test('a bounce to the SRS sender is reversed and delivered to the original sender', async () => {
    assert.ok(srsSender, 'needs the first test');
    const c = await rawClient(server, 'smtp', 'mx.remote.example');
    try {
      assert.equal((await c.command('MAIL FROM:<>')).code, 250);
      const rcpt = await c.command(`RCPT TO:<${srsSender}>`);
      assert.equal(rcpt.code, 250, rcpt.raw);
      assert.equal((await c.command('DATA')).code, 354);
      const done = await c.command(`${message('bounce via srs').replace(/\r\n$/, '')}\r\n.`);
      assert.equal(done.code, 250, done.raw);
    } finally {
      c.close();
    }
    const m = await received('bounce via srs');
    assert.deepEqual(m.to, ['sender@outside.example']);
    assert.equal(m.from, '', 'the null sender stays null');
    await waitForEmptyQueue(server);
  });

  test('a forged or expired SRS address is refused at RCPT TO with 550 5.7.1', async () => {
    assert.ok(srsSender, 'needs the first test');
    const [, hash] = srsSender.split('=');
    const forged = srsSender.replace(hash, hash.replace(/^./, (x) => (x.toUpperCase() === 'A' ? 'B' : 'A')));
    const retargeted = srsSender.replace('=outside.example=', '=victim.example=');
    // Signed with the server's own secret, but 30 days ago (maxAgeDays is 21).
    const old = new Srs({ secrets: Srs.secretsFromFile(join(server.dataDir, 'srs.secret')), domain: 'mx.example.com', maxAgeDays: 21, now: () => Date.now() - 30 * 86_400_000 });
    const expired = old.forward('sender@outside.example');
    const c = await rawClient(server, 'smtp', 'mx.remote.example');
    try {
      for (const rcpt of [forged, retargeted, expired]) {
        assert.equal((await c.command('MAIL FROM:<>')).code, 250);
        const r = await c.command(`RCPT TO:<${rcpt}>`);
        assert.equal(r.code, 550, `${rcpt}: ${r.raw}`);
        assert.match(r.text, /^5\.7\.1 .*SRS/);
        await c.command('RSET');
      }
    } finally {
      c.close();
    }
  });

  test('a sender in our own domains is not rewritten (SPF already passes for us)', async () => {
    await transport(server, 'submission', JOHN).sendMail({ envelope: { from: 'john@example.com', to: ['laura.verdi@example.com'] }, raw: message('own sender forwarded') });
    const m = await received('own sender forwarded');
    assert.deepEqual(m.to, ['laura@remote.example']);
    assert.equal(m.from, 'john@example.com');
  });
});
