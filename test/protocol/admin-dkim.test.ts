/**
 * DKIM keys through the admin API (GET/POST/DELETE /api/dkim, POST /api/dkim/{domain}/rotate), on a real server:
 *  - one node on the embedded default (the key files of its dataDir): the routes' answers and refusals, and mail
 *    submitted afterwards carries a signature that mailauth verifies with the record the API printed;
 *  - two nodes with `state: postgres` on one database of the run's PostgreSQL, each with its own dataDir (nothing
 *    on disk shared): a key added through A's API signs mail submitted through B; rotated through B, mail through
 *    A is signed with the new selector; deleted through A, mail through B goes out unsigned.
 * The delivered copy is read from whichever node delivered it and verified with a resolver that knows only the
 * records the API returned (so a signature by any other key fails).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { dkimVerify } from 'mailauth';
import { adminRequest } from '../helpers/admin-call.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/pg-database.ts';
import { sendRaw } from '../helpers/raw-smtp.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { waitFor } from '../helpers/wait.ts';
import { JOHN, submissionClient, TLS_FILES } from './smtp-env.ts';

const REPLY_MS = 60_000;

interface Record_ {
  name: string;
  strings: string[];
  selector: string;
}

function mail(subject: string): string {
  return `From: John Smith <john@example.com>\r\nTo: <laura.verdi@example.com>\r\nSubject: ${subject}\r\nDate: Wed, 02 Dec 2026 00:00:00 +0000\r\nMessage-ID: <${subject.replace(/\W/g, '')}.${Date.now()}@example.com>\r\n\r\nBody of ${subject}.\r\n`;
}

/** Submits as John through `node` and returns the copy delivered to Laura on whichever of `nodes` has it. */
async function submitAndFetch(node: TestServer, nodes: TestServer[], subject: string): Promise<Buffer> {
  const c = await submissionClient(node, JOHN, { timeoutMs: REPLY_MS });
  const r = await sendRaw(c, 'john@example.com', ['laura.verdi@example.com'], mail(subject));
  c.close();
  assert.equal(r.code, 250, r.raw);
  const text = await waitFor(
    `"${subject}" delivered`,
    () => nodes.flatMap((n) => n.inbox('laura.verdi')).find((m) => m.includes(`Subject: ${subject}\r\n`)),
    { timeoutMs: 60_000, intervalMs: 100 },
  );
  return Buffer.from(text, 'latin1');
}

async function verify(message: Buffer, records: Record_[]): Promise<{ status: string; domain: string; selector?: string }[]> {
  const txt = new Map(records.map((r) => [r.name, [r.strings]]));
  const res = await dkimVerify(message, {
    resolver: async (name: string) => {
      const v = txt.get(name.replace(/\.$/, ''));
      if (!v) throw Object.assign(new Error('ENOTFOUND'), { code: 'ENOTFOUND' });
      return v;
    },
  });
  return res.results.filter((x) => x.signingDomain).map((x) => ({ status: x.status.result, domain: x.signingDomain, selector: x.selector }));
}

async function noFilters(node: TestServer): Promise<void> {
  await node.core.settings.apply(() => {
    node.core.settings.set('filter.antivirus', false);
    node.core.settings.set('filter.spam', false);
  });
}

describe('DKIM keys through the admin API on one node (key files)', () => {
  let s: TestServer;
  before(async () => {
    s = await startTestServer({ tls: TLS_FILES });
    await noFilters(s);
  });
  after(async () => {
    await s?.close();
  });

  test('generate, refuse a second, show, rotate, delete, and the answers for what is not there', async () => {
    assert.deepEqual((await adminRequest(s, 'GET', '/api/dkim')).json, { keys: [] });
    const made = await adminRequest(s, 'POST', '/api/dkim', { body: { domain: 'Example.com', selector: 'k1', bits: 1024 } });
    assert.equal(made.status, 201, made.text);
    assert.deepEqual([made.json.domain, made.json.selector, made.json.bits, made.json.replaced], ['example.com', 'k1', 1024, []]);
    assert.equal(made.json.name, 'k1._domainkey.example.com');
    assert.match(made.json.value, /^v=DKIM1; k=rsa; p=[A-Za-z0-9+/=]+$/);
    assert.equal(JSON.stringify(made.json).includes('PRIVATE'), false, 'the private key never leaves the server');

    const again = await adminRequest(s, 'POST', '/api/dkim', { body: { domain: 'example.com', bits: 1024 } });
    assert.equal(again.status, 409, again.text);
    assert.equal((await adminRequest(s, 'POST', '/api/dkim', { body: { domain: 'example.org', bits: 512 } })).status, 400);
    assert.equal((await adminRequest(s, 'POST', '/api/dkim', { body: { domain: 'example.org', selector: 'a.b', bits: 1024 } })).status, 400);

    const listed = await adminRequest(s, 'GET', '/api/dkim');
    assert.deepEqual(listed.json.keys.map((k: { domain: string; selector: string }) => [k.domain, k.selector]), [['example.com', 'k1']]);
    const shown = await adminRequest(s, 'GET', '/api/dkim/example.com');
    assert.equal(shown.json.value, made.json.value);

    const signed = await submitAndFetch(s, [s], 'single node k1');
    assert.deepEqual(await verify(signed, [made.json]), [{ status: 'pass', domain: 'example.com', selector: 'k1' }]);

    const rotated = await adminRequest(s, 'POST', '/api/dkim/example.com/rotate');
    assert.equal(rotated.status, 200, rotated.text);
    assert.deepEqual([rotated.json.bits, rotated.json.replaced], [1024, ['k1']]);
    assert.notEqual(rotated.json.selector, 'k1');
    const after = await submitAndFetch(s, [s], 'single node rotated');
    assert.deepEqual(await verify(after, [made.json, rotated.json]), [{ status: 'pass', domain: 'example.com', selector: rotated.json.selector }]);

    const del = await adminRequest(s, 'DELETE', '/api/dkim/example.com');
    assert.deepEqual(del.json, { domain: 'example.com', removed: [rotated.json.selector] });
    assert.equal((await adminRequest(s, 'DELETE', '/api/dkim/example.com')).status, 404);
    assert.equal((await adminRequest(s, 'GET', '/api/dkim/example.com')).status, 404);
    assert.equal((await adminRequest(s, 'POST', '/api/dkim/example.com/rotate')).status, 404);
    const unsigned = await submitAndFetch(s, [s], 'single node unsigned');
    assert.doesNotMatch(unsigned.toString('latin1'), /^DKIM-Signature:/im);
  });
});

describe('DKIM keys shared by two nodes on PostgreSQL', () => {
  let db: TestDatabase;
  let a: TestServer;
  let b: TestServer;

  before(async () => {
    db = await createTestDatabase({ prefix: 'cluster_dkim' });
    const over = { tls: TLS_FILES, state: { type: 'postgres', url: db.url, connectTimeoutMs: 5000 } };
    a = await startTestServer(over);
    b = await startTestServer(over);
    await a.core.settings.apply(() => {
      a.core.settings.set('filter.antivirus', false);
      a.core.settings.set('filter.spam', false);
      for (const name of ['example.com', 'example.org']) if (!a.core.settings.getDomain(name)) a.core.settings.addDomain({ name, type: 'local' });
    });
    await waitFor('B to read the shared settings', () => b.core.settings.get('filter.spam') === false, { timeoutMs: 30_000 });
  });
  after(async () => {
    await a?.close();
    await b?.close();
    await db?.drop();
  });

  test('a key added through A signs mail sent through B; rotated through B it signs through A; deleted through A, B sends unsigned', async () => {
    const made = await adminRequest(a, 'POST', '/api/dkim', { body: { domain: 'example.com', selector: 'nodea', bits: 1024 } });
    assert.equal(made.status, 201, made.text);
    // B lists it at once: the table is the only copy.
    assert.deepEqual((await adminRequest(b, 'GET', '/api/dkim')).json.keys.map((k: { selector: string }) => k.selector), ['nodea']);
    const viaB = await submitAndFetch(b, [a, b], 'sent through B');
    assert.deepEqual(await verify(viaB, [made.json]), [{ status: 'pass', domain: 'example.com', selector: 'nodea' }]);

    const rotated = await adminRequest(b, 'POST', '/api/dkim/example.com/rotate', { body: { bits: 1024 } });
    assert.equal(rotated.status, 200, rotated.text);
    assert.deepEqual(rotated.json.replaced, ['nodea']);
    const viaA = await submitAndFetch(a, [a, b], 'sent through A after the rotation');
    assert.deepEqual(await verify(viaA, [made.json, rotated.json]), [{ status: 'pass', domain: 'example.com', selector: rotated.json.selector }]);

    const del = await adminRequest(a, 'DELETE', '/api/dkim/example.com');
    assert.equal(del.status, 200, del.text);
    assert.equal((await adminRequest(b, 'GET', '/api/dkim/example.com')).status, 404);
    const unsigned = await submitAndFetch(b, [a, b], 'sent through B after the delete');
    assert.doesNotMatch(unsigned.toString('latin1'), /^DKIM-Signature:/im);
  });
});
