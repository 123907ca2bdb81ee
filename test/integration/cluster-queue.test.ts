/**
 * Two `postern serve` processes running one queue (issue 16): one dataDir (one queue directory, one Maildir root),
 * the queue's metadata in PostgreSQL (src/state/postgres/queue.ts).
 *
 * - mail accepted on A and on B, to a remote MX (a loopback sink, reached through a relay domain's next hop) and to
 *   a local mailbox, is delivered exactly once each, and the admin queue API of either node sees the whole queue;
 * - A SIGKILLed while the MX holds its delivery open: B delivers A's message after A's lease (queue.leaseSeconds),
 *   nothing is lost (a repeat after the crash is allowed, a loss is not);
 * - PostgreSQL stopped: DATA is answered 451 4.3.0 (never 250, never 5xx), /readyz says why; after PostgreSQL is
 *   started again (every connection dropped) mail is accepted and delivered without a restart, and what was
 *   accepted before the outage is delivered too.
 *
 * The directory is the embedded LDIF (fixtures/ad/corp.ldif); the filters use the run's clamd and spamd.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { SMTPServer } from 'smtp-server';
import { ROOT, spawnCli, writeConfig } from '../helpers/cli.ts';
import { NODE_LISTENERS, nodeAdmin, startClusterNode, type ClusterNode } from '../helpers/cluster-node.ts';
import { createTestDatabase, ownPostgres } from '../helpers/pg-database.ts';
import { RawSmtp, sendRaw } from '../helpers/raw-smtp.ts';
import { startSmtpSink, type SmtpSink } from '../helpers/smtp-sink.ts';
import { waitFor } from '../helpers/wait.ts';

function need(name: string): string {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run integration tests through test/run.ts`);
  return v;
}

/** One config file, one dataDir, for every node of a test. */
function clusterConfig(url: string, leaseSeconds = 3): { file: string; dataDir: string } {
  return writeConfig({
    hostname: 'mx.example.com',
    state: { type: 'postgres', url, connectTimeoutMs: 2000 },
    directory: { type: 'ldif', file: join(ROOT, 'fixtures/ad/corp.ldif') },
    // The run's clamd and spamd: the filters are on, as in production, and must not be what fails here.
    clamav: { socket: need('POSTERN_TEST_CLAMD_SOCKET') },
    spamassassin: { host: need('POSTERN_TEST_SPAMD_HOST'), port: Number(need('POSTERN_TEST_SPAMD_PORT')) },
    queue: { retryMinSeconds: 0.5, retryMaxSeconds: 1, scanIntervalSeconds: 0.5, leaseSeconds },
    listeners: NODE_LISTENERS,
  });
}

function mailText(subject: string, to: string): string {
  return `From: someone@example.net\r\nTo: ${to}\r\nSubject: ${subject}\r\nMessage-ID: <${subject}@example.net>\r\n\r\nbody of ${subject}\r\n`;
}

/** One message from an outside client on port 25; the final reply. */
async function send(node: ClusterNode, to: string, subject: string): Promise<{ code: number; text: string }> {
  const c = await RawSmtp.connect(node.server.ports.smtp, { timeoutMs: 60_000 });
  try {
    assert.equal((await c.command('EHLO client.example.net')).code, 250);
    const r = await sendRaw(c, 'someone@example.net', [to], mailText(subject, to));
    return { code: r.code, text: r.text };
  } finally {
    c.close();
  }
}

/**
 * The local domain example.com (john.smith's) and the relay domain partner.example with the sink as next hop, made
 * through A; waits until B accepts for both too.
 */
async function routeToSink(a: ClusterNode, b: ClusterNode, port: number): Promise<void> {
  const local = await nodeAdmin(a, 'POST', '/api/domains', { name: 'example.com', type: 'local' });
  assert.equal(local.status, 201, JSON.stringify(local.json));
  const added = await nodeAdmin(a, 'POST', '/api/domains', { name: 'partner.example', type: 'relay', nexthop: `127.0.0.1:${port}` });
  assert.equal(added.status, 201, JSON.stringify(added.json));
  let last = '';
  await waitFor(
    'B to accept RCPT for partner.example and example.com',
    async () => {
      const c = await RawSmtp.connect(b.server.ports.smtp);
      try {
        const replies: string[] = [];
        for (const cmd of ['EHLO client.example.net', 'MAIL FROM:<someone@example.net>', 'RCPT TO:<bob@partner.example>', 'RCPT TO:<john@example.com>']) {
          const r = await c.command(cmd);
          replies.push(`${cmd} → ${r.code} ${r.text.split('\n')[0]}`);
          if (r.code !== 250) {
            last = replies.join('; ');
            return false;
          }
        }
        return true;
      } finally {
        c.close();
      }
    },
    { timeoutMs: 30_000, intervalMs: 100 },
  ).catch((err: Error) => {
    throw new Error(`${err.message}; B's last replies: ${last}\nB's log:\n${b.server.stderr().slice(-6000)}`);
  });
}

/** Every file under `dir`, recursively. */
function filesUnder(dir: string): string[] {
  const out: string[] = [];
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return out;
  }
  for (const n of names) {
    const p = join(dir, n);
    if (statSync(p).isDirectory()) out.push(...filesUnder(p));
    else out.push(p);
  }
  return out;
}

/** How many messages in the Maildirs under dataDir/mail carry `subject`. */
function inMailboxes(dataDir: string, subject: string): number {
  return filesUnder(join(dataDir, 'mail'))
    .filter((p) => /\/(new|cur)\/[^/]+$/.test(p))
    .filter((p) => readFileSync(p, 'latin1').includes(`\r\nSubject: ${subject}\r\n`)).length;
}

const subjectsAt = (sink: SmtpSink, subject: string) => sink.messages.filter((m) => m.data.toString('latin1').includes(`Subject: ${subject}\r\n`)).length;

async function queueEmpty(node: ClusterNode): Promise<boolean> {
  const r = await nodeAdmin(node, 'GET', '/api/queue');
  return r.status === 200 && Array.isArray(r.json.messages) && r.json.messages.length === 0;
}

describe('two nodes, one queue on PostgreSQL, one dataDir', () => {
  test('mail accepted on A and on B, to a remote MX and to a local mailbox, is delivered exactly once each', async (t) => {
    const db = await createTestDatabase({ owner: t, prefix: 'cq_once' });
    const sink = await startSmtpSink();
    t.after(() => sink.close());
    const { file, dataDir } = clusterConfig(db.url);
    const a = await startClusterNode(t, file);
    const b = await startClusterNode(t, file);
    await routeToSink(a, b, sink.port);
    const sent: { subject: string; remote: boolean }[] = [];
    for (let i = 0; i < 6; i++) {
      for (const [name, node] of [['a', a], ['b', b]] as const) {
        const remote = i % 2 === 0;
        const subject = `once-${name}-${i}`;
        const r = await send(node, remote ? 'bob@partner.example' : 'john@example.com', subject);
        assert.equal(r.code, 250, r.text);
        sent.push({ subject, remote });
      }
    }
    await waitFor(
      'every message to arrive',
      () => sent.every((s) => (s.remote ? subjectsAt(sink, s.subject) : inMailboxes(dataDir, s.subject)) >= 1),
      { timeoutMs: 120_000, intervalMs: 200 },
    );
    // Once the whole cluster's queue is empty, nothing more can be delivered: the counts are final.
    await waitFor('the queue to be empty on both nodes', async () => (await queueEmpty(a)) && (await queueEmpty(b)), { timeoutMs: 60_000, intervalMs: 200 });
    for (const s of sent) {
      assert.equal(s.remote ? subjectsAt(sink, s.subject) : inMailboxes(dataDir, s.subject), 1, `${s.subject} delivered once`);
    }
    // Both nodes did deliver (the claims spread the work), and neither refused to start on the shared dataDir.
    const deliveredBy = (n: ClusterNode) => n.server.logs().filter((l) => l.status === 'sent').length;
    assert.ok(deliveredBy(a) + deliveredBy(b) >= sent.length);
  });

  test('A SIGKILLed while the MX holds its delivery open: B delivers the message after the lease', async (t) => {
    const db = await createTestDatabase({ owner: t, prefix: 'cq_kill' });
    let hold = true;
    const held: (() => void)[] = [];
    // An MX that, while `hold`, takes the whole message and then never answers the end of DATA.
    const received: string[] = [];
    const accepted: string[] = [];
    const mx = new SMTPServer({
      authOptional: true,
      disabledCommands: ['AUTH', 'STARTTLS'],
      logger: false,
      disableReverseLookup: true,
      onData(stream, _session, cb) {
        const chunks: Buffer[] = [];
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.on('end', () => {
          const text = Buffer.concat(chunks).toString('latin1');
          received.push(text);
          if (hold) held.push(() => cb(null));
          else {
            accepted.push(text);
            cb(null, '2.0.0 queued');
          }
        });
      },
    });
    mx.on('error', () => undefined);
    await new Promise<void>((resolve) => mx.listen(0, '127.0.0.1', resolve));
    t.after(() => new Promise<void>((resolve) => mx.close(() => resolve())));
    const mxPort = (mx.server.address() as { port: number }).port;

    const { file } = clusterConfig(db.url, 3);
    const a = await startClusterNode(t, file);
    const added = await nodeAdmin(a, 'POST', '/api/domains', { name: 'partner.example', type: 'relay', nexthop: `127.0.0.1:${mxPort}` });
    assert.equal(added.status, 201, JSON.stringify(added.json));
    // Only A runs yet, so A is the one that claims and delivers.
    const r = await send(a, 'bob@partner.example', 'kill-1');
    assert.equal(r.code, 250, r.text);
    await waitFor('A to be delivering to the MX', () => received.some((m) => m.includes('Subject: kill-1')), { timeoutMs: 60_000, intervalMs: 100 });
    const b = await startClusterNode(t, file);
    // The CLI (not a node) sees the cluster's queue in PostgreSQL: the message A is delivering, claimed by A.
    const listed = await spawnCli(['queue', 'list', '--json'], { config: file });
    assert.equal(listed.code, 0, listed.err);
    const queue = JSON.parse(listed.out) as { recipients?: unknown }[];
    assert.equal(queue.length, 1, listed.out);
    assert.match(listed.out, /bob@partner\.example/);
    await a.server.kill('SIGKILL');
    hold = false;
    await waitFor('B to deliver A\'s message', () => accepted.some((m) => m.includes('Subject: kill-1')), { timeoutMs: 120_000, intervalMs: 200 });
    await waitFor('the queue to be empty', () => queueEmpty(b), { timeoutMs: 60_000, intervalMs: 200 });
    assert.ok(b.server.logs().some((l) => l.status === 'sent'), 'B delivered it');
  });

  describe('PostgreSQL stopped and back', () => {
    const own = ownPostgres();

    test('DATA is answered 451 4.3.0 while it is down, /readyz says why; afterwards mail is accepted and delivered', async (t) => {
      const db = await createTestDatabase({ owner: t, prefix: 'cq_down', baseUrl: own.url });
      const sink = await startSmtpSink();
      t.after(() => sink.close());
      const { file, dataDir } = clusterConfig(db.url);
      const a = await startClusterNode(t, file);
      const b = await startClusterNode(t, file);
      await routeToSink(a, b, sink.port);
      const before1 = await send(a, 'bob@partner.example', 'down-before');
      assert.equal(before1.code, 250, before1.text);

      await own.stop();
      for (const [name, node] of [['a', a], ['b', b]] as const) {
        const r = await send(node, 'bob@partner.example', `down-during-${name}`);
        assert.equal(r.code, 451, `${name}: ${r.text}`);
        assert.match(r.text, /^4\.3\.0 /);
      }
      const ready = await nodeAdmin(a, 'GET', '/readyz', undefined, false);
      assert.equal(ready.status, 503);
      assert.equal(ready.json.checks.state.ok, false);
      assert.match(ready.json.checks.state.detail, /PostgreSQL unreachable/);
      // Nothing of the refused messages lies in the queue directory.
      const queueFiles = readdirSync(join(dataDir, 'queue')).filter((n) => n.endsWith('.eml'));
      for (const f of queueFiles) assert.doesNotMatch(readFileSync(join(dataDir, 'queue', f), 'latin1'), /Subject: down-during/);

      await own.start();
      await waitFor('A to find PostgreSQL again', async () => (await nodeAdmin(a, 'GET', '/readyz', undefined, false)).json.checks.state.ok === true, {
        timeoutMs: 60_000,
        intervalMs: 200,
      });
      for (const [name, node] of [['a', a], ['b', b]] as const) {
        const r = await waitFor(`${name} to accept mail again`, async () => {
          const x = await send(node, 'bob@partner.example', `down-after-${name}`);
          assert.ok(x.code === 250 || x.code === 451, `${name}: ${x.code} ${x.text}`);
          return x.code === 250 ? x : undefined;
        }, { timeoutMs: 60_000, intervalMs: 500 });
        assert.equal(r.code, 250);
      }
      await waitFor(
        'the messages accepted before and after the outage to arrive',
        () => ['down-before', 'down-after-a', 'down-after-b'].every((s) => subjectsAt(sink, s) >= 1),
        { timeoutMs: 120_000, intervalMs: 200 },
      );
      assert.equal(subjectsAt(sink, 'down-during-a') + subjectsAt(sink, 'down-during-b'), 0);
    });
  });
});
