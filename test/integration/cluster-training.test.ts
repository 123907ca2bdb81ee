/**
 * Bayes training on two nodes sharing PostgreSQL (issue 16), against a real spamd of this test's own (Bayes on,
 * learned tokens kept away from the spamd other files score with): two servers in this process with
 * `state: postgres` on one database, both pointed at that spamd, so both nodes' trainers drain the one queue.
 * A user on node B (real IMAP client, imapflow) moves a message into Junk; the lesson is told to spamd once — one
 * "taught" line in the two nodes' logs together, the queue empty — and spamd has it (learning it again as spam
 * reports nothing new).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ImapFlow } from 'imapflow';
import { Spamc } from '../../src/filters/spamc.ts';
import { startSpamd, type Spamd } from '../harness/spamd.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/pg-database.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { waitFor } from '../helpers/wait.ts';
import { logCapture, TLS_FILES } from '../protocol/smtp-env.ts';

function imap(server: TestServer): ImapFlow {
  return new ImapFlow({ host: '127.0.0.1', port: server.ports.imap, secure: false, doSTARTTLS: true, tls: { rejectUnauthorized: false }, auth: { user: 'john.smith', pass: 'Corp!Passw0rd' }, logger: false });
}

describe('a message moved to Junk on B is taught to spamd once, with two nodes sharing the training queue', () => {
  let spamd: Spamd;
  let db: TestDatabase;
  let a: TestServer;
  let b: TestServer;
  const logA = logCapture();
  const logB = logCapture();

  before(async () => {
    spamd = await startSpamd({ bayesMinNum: 1 });
    db = await createTestDatabase({ prefix: 'cluster_training' });
    const over = {
      tls: TLS_FILES,
      state: { type: 'postgres', url: db.url, connectTimeoutMs: 5000 },
      spamassassin: { host: spamd.host, port: spamd.port, timeoutMs: 30_000 },
    };
    a = await startTestServer(over, { logStream: logA.stream });
    b = await startTestServer(over, { logStream: logB.stream });
  });
  after(async () => {
    await a?.close();
    await b?.close();
    await db?.drop();
    await spamd?.destroy();
  });

  test('MOVE into Junk through B: told once across A and B, and spamd learned it', async () => {
    const text = `From: Deals <deals@pills.example>\r\nTo: john@example.com\r\nSubject: zorblax ${Date.now()}\r\nMessage-ID: <zorblax.${Date.now()}@pills.example>\r\n\r\nBuy zorblax quorvane pills now, zorblax discount ${Math.random()}.\r\n`;
    const c = imap(b);
    await c.connect();
    try {
      if (!(await c.list()).some((f) => f.path === 'Junk')) await c.mailboxCreate('Junk');
      await c.append('INBOX', text);
      await c.mailboxOpen('INBOX');
      const moved = await c.messageMove('1:*', 'Junk');
      assert.ok(moved, 'MOVE answered OK');
    } finally {
      await c.logout();
    }
    const taught = () => [...logA.lines, ...logB.lines].filter((l) => typeof l.msg === 'string' && (l.msg as string).startsWith('spam training: '));
    await waitFor('the lesson to be told', () => taught().length >= 1, { timeoutMs: 120_000, intervalMs: 100 });
    await waitFor('the queue to be empty', async () => Number((await a.core.state.pg!.query<{ n: number }>('SELECT count(*)::int8 AS n FROM spam_training')).rows[0].n) === 0, {
      timeoutMs: 60_000,
      intervalMs: 100,
    });
    const lines = taught();
    assert.equal(lines.length, 1, JSON.stringify(lines));
    assert.deepEqual([lines[0].msg, lines[0].learned, lines[0].user], ['spam training: taught spam', true, 'john.smith']);
    // spamd has it: the same message (APPEND stores the literal as sent) learned again as spam is nothing new.
    const spamc = new Spamc({ host: spamd.host, port: spamd.port, timeoutMs: 30_000 });
    assert.equal(await spamc.learn(Buffer.from(text, 'latin1'), 'spam'), false);
  });
});
