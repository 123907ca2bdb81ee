/**
 * smtp.workers (src/smtp/workers.ts) with state postgres (issue 16): the two worker processes commit the spool
 * themselves, so each must reach PostgreSQL on its own pool (the queue's commit point is the row's INSERT, before
 * the 250). Messages accepted by both workers at once are delivered by the main process's scheduler, each exactly
 * once, and the queue table is empty afterwards.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { sendRaw, type RawSmtp, type SmtpReply } from '../helpers/raw-smtp.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/pg-database.ts';
import type { TestServer } from '../helpers/server.ts';
import { waitFor } from '../helpers/wait.ts';
import { message, rawClient, startSmtpTestServer, waitForEmptyQueue } from './smtp-env.ts';

const REPLY_MS = 60_000;
const subjectOf = (mail: string) => /^Subject: (.*)$/m.exec(mail)?.[1]?.trim();

describe('SMTP in two worker processes on the PostgreSQL state store', () => {
  let db: TestDatabase;
  let server: TestServer;
  let probe: pg.Client;

  before(async () => {
    db = await createTestDatabase({ prefix: 'smtp_workers' });
    server = await startSmtpTestServer({ smtp: { workers: 2 }, state: { type: 'postgres', url: db.url, connectTimeoutMs: 5000 } });
    await server.core.settings.apply(() => {
      server.core.settings.set('filter.antivirus', false);
      server.core.settings.set('filter.spam', false);
      for (const name of ['example.com', 'example.org']) if (!server.core.settings.getDomain(name)) server.core.settings.addDomain({ name, type: 'local' });
    });
    probe = new pg.Client({ connectionString: db.url });
    probe.on('error', () => {});
    await probe.connect();
  });
  after(async () => {
    await probe?.end().catch(() => {});
    await server?.close();
    await db?.drop();
  });

  it('messages accepted by both workers at once are all delivered, each exactly once, and leave no row', { timeout: 300_000 }, async () => {
    const workers = server.smtpWorkers!;
    assert.equal(workers.pids().length, 2);
    const total = () => [...workers.byPid().values()].reduce((n, w) => n + w.sessions, 0);
    const conns: RawSmtp[] = [];
    for (let i = 0; i < 2; i++) {
      conns.push(await rawClient(server, 'smtp', 'client.example.net', { timeoutMs: REPLY_MS }));
      await waitFor(`${i + 1} sessions counted`, () => total() === i + 1, { timeoutMs: REPLY_MS });
    }
    assert.deepEqual([...workers.byPid().values()].map((w) => w.sessions), [1, 1], 'one session on each worker');
    const PER = 8;
    // A worker that queued into a spool of its own (not the shared rows) would leave mail undelivered or doubled.
    const send = async (c: RawSmtp, tag: string) => {
      const replies: SmtpReply[] = [];
      for (let i = 0; i < PER; i++) {
        replies.push(await sendRaw(c, 'sender@outside.example', ['john@example.com'], message(`${tag} ${i}`)));
      }
      return replies;
    };
    try {
      const replies = (await Promise.all([send(conns[0]!, 'a'), send(conns[1]!, 'b')])).flat();
      for (const r of replies) assert.equal(r.code, 250, r.raw);
    } finally {
      for (const c of conns) c.close();
    }
    assert.deepEqual([...workers.byPid().values()].map((w) => w.enqueued), [PER, PER], 'each worker queued its own session’s messages');
    await server.waitForMail('john.smith', 2 * PER, { ms: REPLY_MS });
    await waitForEmptyQueue(server, REPLY_MS);
    const subjects = server.inbox('john.smith').map(subjectOf).sort();
    const expected = ['a', 'b'].flatMap((t) => [...Array(PER).keys()].map((i) => `${t} ${i}`)).sort();
    assert.deepEqual(subjects, expected, 'every message once, none twice');
    await waitFor('queue_messages to be empty', async () => Number((await probe.query('SELECT count(*) AS n FROM queue_messages')).rows[0].n) === 0, { timeoutMs: REPLY_MS });
  });
});
