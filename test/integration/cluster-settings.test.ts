/**
 * Two `postern serve` processes sharing their runtime settings through PostgreSQL (issue 16): a change made through
 * node A's admin API acts on node B (its SMTP policy) without a restart; PostgreSQL stopped → a change is refused
 * with 503 and changes nothing, /readyz says why, and everything resumes by itself when PostgreSQL is back (its
 * restart dropped every connection, the LISTEN ones too).
 *
 * Each node has its own dataDir for now: the queue is not shared yet (one dataDir still takes one server).
 * No Samba: the directory is the embedded LDIF (fixtures/ad/corp.ldif); lives under test/integration because it
 * spawns server processes.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { ROOT, spawnCli, writeConfig } from '../helpers/cli.ts';
import { NODE_LISTENERS, nodeAdmin, startClusterNode, type ClusterNode } from '../helpers/cluster-node.ts';
import { createTestDatabase, ownPostgres } from '../helpers/pg-database.ts';
import { RawSmtp } from '../helpers/raw-smtp.ts';
import { waitFor } from '../helpers/wait.ts';

interface Node extends ClusterNode {
  dataDir: string;
  config: string;
}

async function startNode(t: TestContext, url: string): Promise<Node> {
  const { file, dataDir } = writeConfig({
    hostname: 'mx.example.com',
    state: { type: 'postgres', url, connectTimeoutMs: 2000 },
    directory: { type: 'ldif', file: join(ROOT, 'fixtures/ad/corp.ldif') },
    listeners: NODE_LISTENERS,
  });
  return { ...(await startClusterNode(t, file)), dataDir, config: file };
}

/** B's answer to RCPT TO <rcpt> from an unauthenticated outside client on port 25. */
async function rcptReply(node: Node, rcpt: string): Promise<number> {
  const c = await RawSmtp.connect(node.server.ports.smtp);
  try {
    assert.equal((await c.command('EHLO client.example.net')).code, 250);
    assert.equal((await c.command('MAIL FROM:<someone@example.net>')).code, 250);
    return (await c.command(`RCPT TO:<${rcpt}>`)).code;
  } finally {
    c.close();
  }
}

describe('two nodes, one PostgreSQL for the settings', () => {
  test('a relay domain added through A is accepted for relay by B, and removed through B is refused again by A', async (t) => {
    const db = await createTestDatabase({ owner: t, prefix: 'cluster' });
    const a = await startNode(t, db.url);
    const b = await startNode(t, db.url);
    // Not a domain of ours: B refuses to relay for it.
    const before = await rcptReply(b, 'someone@partner.example');
    assert.ok(before >= 500, `before: ${before}`);
    const added = await nodeAdmin(a, 'POST', '/api/domains', { name: 'partner.example', type: 'relay', nexthop: 'smtp.partner.example' });
    assert.equal(added.status, 201, JSON.stringify(added.json));
    await waitFor('B to accept RCPT for partner.example', async () => (await rcptReply(b, 'someone@partner.example')) === 250, {
      timeoutMs: 30_000,
      intervalMs: 100,
    });
    const removed = await nodeAdmin(b, 'DELETE', '/api/domains/partner.example');
    assert.equal(removed.status, 200, JSON.stringify(removed.json));
    await waitFor('A to refuse RCPT for partner.example again', async () => (await rcptReply(a, 'someone@partner.example')) >= 500, {
      timeoutMs: 30_000,
      intervalMs: 100,
    });
    const ready = await nodeAdmin(a, 'GET', '/readyz', undefined, false);
    assert.equal(ready.json.checks.state?.ok, true, JSON.stringify(ready.json));
    // Both nodes are registered and beating.
    assert.match(ready.json.checks.state.detail, /nodes: \S+ mx\.example\.com 0\.1\.0 up, \S+ mx\.example\.com 0\.1\.0 up$/);
    const status = await spawnCli(['cluster', 'status', '--json'], { config: a.config });
    assert.equal(status.code, 0, status.err);
    const nodes = JSON.parse(status.out) as { id: string; alive: boolean }[];
    assert.equal(nodes.length, 2);
    assert.ok(nodes.every((n) => n.alive));
  });

  describe('PostgreSQL stopped and back', () => {
    const own = ownPostgres();

    test('a change is 503 and stored nowhere, /readyz says why, and after the restart a change through A acts on B', async (t) => {
      const db = await createTestDatabase({ owner: t, prefix: 'cluster_down', baseUrl: own.url });
      const a = await startNode(t, db.url);
      const b = await startNode(t, db.url);
      await own.stop();
      const refused = await nodeAdmin(a, 'POST', '/api/domains', { name: 'during.example', type: 'relay', nexthop: 'mx.during.example' });
      assert.equal(refused.status, 503, JSON.stringify(refused.json));
      const ready = await nodeAdmin(a, 'GET', '/readyz', undefined, false);
      assert.equal(ready.status, 503);
      assert.equal(ready.json.checks.state.ok, false);
      assert.match(ready.json.checks.state.detail, /PostgreSQL unreachable/);
      // Mail policy goes on from each node's copy of the settings meanwhile.
      assert.ok((await rcptReply(b, 'someone@during.example')) >= 500);

      await own.start();
      // Only the state check: clamd and spamd are not configured for these nodes, so /readyz as a whole stays 503.
      await waitFor('A to find PostgreSQL again', async () => (await nodeAdmin(a, 'GET', '/readyz', undefined, false)).json.checks.state.ok === true, {
        timeoutMs: 60_000,
        intervalMs: 200,
      });
      const added = await nodeAdmin(a, 'POST', '/api/domains', { name: 'after.example', type: 'relay', nexthop: 'mx.after.example' });
      assert.equal(added.status, 201, JSON.stringify(added.json));
      await waitFor('B to accept RCPT for after.example', async () => (await rcptReply(b, 'someone@after.example')) === 250, {
        timeoutMs: 60_000,
        intervalMs: 100,
      });
      assert.ok((await rcptReply(b, 'someone@during.example')) >= 500, 'the refused change never arrived');
    });
  });
});
