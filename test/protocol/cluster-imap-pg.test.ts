/**
 * Two `postern serve` processes on one PostgreSQL (state postgres, issue 16) and one mail directory: node B's
 * dataDir/mail is a symlink to node A's (the shared mount of a cluster). Each node has its own dataDir otherwise
 * (queue, TLS pair). Real listeners, raw clients: a delivery through A's SMTP reaches an IDLE session on B, a STORE
 * through A reaches it too (only PostgreSQL carries that: no file in new/ changes), concurrent APPENDs through A and
 * B get distinct increasing UIDs from the shared index (state/postgres/maildir-pg-index.ts) and every UID FETCHes
 * the message appended under it on both nodes, SMTP deliveries through A and APPENDs through B into one INBOX at
 * the same time all get distinct UIDs, a POP3 maildrop locked on A is refused on B, and while the database refuses
 * connections (ALTER DATABASE … ALLOW_CONNECTIONS false and its sessions ended: what a stopped PostgreSQL looks like
 * to the nodes, without stopping the server other test files share) IMAP answers NO [UNAVAILABLE], and works again
 * by itself afterwards.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { connect } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ROOT, runCli, writeConfig } from '../helpers/cli.ts';
import { append, msg, PASSWORD } from '../helpers/imap-fixture.ts';
import pg from 'pg';
import { createTestDatabase, testPgUrl, type TestDatabase } from '../helpers/pg-database.ts';
import { startProcessServer, type ProcessServer } from '../helpers/process-server.ts';
import { RawImap } from '../helpers/raw-imap.ts';
import { waitFor } from '../helpers/wait.ts';

async function smtpSend(port: number, to: string, body: string): Promise<void> {
  const s = connect(port, '127.0.0.1');
  s.setEncoding('latin1');
  let buf = '';
  s.on('data', (d: string) => (buf += d));
  const reply = async (code: number) => {
    const line = await waitFor(`SMTP ${code}`, () => {
      const m = /^(\d{3}) [^\r\n]*\r\n/m.exec(buf);
      if (!m) return undefined;
      buf = buf.slice(m.index + m[0].length);
      return m[0];
    }, { timeoutMs: 30_000, intervalMs: 10 });
    assert.ok(line.startsWith(String(code)), line);
  };
  await reply(220);
  for (const [cmd, code] of [['EHLO client.example', 250], ['MAIL FROM:<anna@example.com>', 250], [`RCPT TO:<${to}>`, 250], ['DATA', 354]] as const) {
    s.write(`${cmd}\r\n`);
    await reply(code);
  }
  s.write(`${body}\r\n.\r\n`);
  await reply(250);
  s.write('QUIT\r\n');
  s.end();
}

async function pop3Login(port: number): Promise<{ reply: string; quit(): Promise<void> }> {
  const s = connect(port, '127.0.0.1');
  s.setEncoding('latin1');
  let buf = '';
  s.on('data', (d: string) => (buf += d));
  s.on('error', () => undefined);
  const line = () =>
    waitFor('a POP3 line', () => {
      const i = buf.indexOf('\r\n');
      if (i < 0) return undefined;
      const l = buf.slice(0, i);
      buf = buf.slice(i + 2);
      return l;
    }, { timeoutMs: 30_000, intervalMs: 10 });
  await line();
  s.write('USER john.smith\r\n');
  await line();
  s.write(`PASS ${PASSWORD}\r\n`);
  const reply = await line();
  return {
    reply,
    async quit() {
      s.write('QUIT\r\n');
      await line().catch(() => '');
      s.destroy();
    },
  };
}

/** A command's whole response, with a generous limit (the machine is loaded). */
async function cmd(c: RawImap, tag: string, text: string): Promise<string> {
  c.send(`${tag} ${text}\r\n`);
  return c.until(new RegExp(`^${tag} (OK|NO|BAD).*\\r\\n`, 'm'), 30_000);
}

/** UID → Subject of every message in INBOX, as the node's IMAP FETCH answers. */
async function subjects(c: RawImap, tag: string): Promise<Map<number, string>> {
  const r = await cmd(c, tag, 'UID FETCH 1:* (BODY.PEEK[HEADER.FIELDS (SUBJECT)])');
  assert.match(r, new RegExp(`^${tag} OK`, 'm'), r);
  const out = new Map<number, string>();
  for (const m of r.matchAll(/^\* \d+ FETCH \(UID (\d+) BODY\[HEADER\.FIELDS \(SUBJECT\)\] \{\d+\}\r\nSubject: ([^\r]*)\r\n/gm)) out.set(Number(m[1]), m[2]!);
  return out;
}

async function pgAdmin(sql: string): Promise<void> {
  const c = new pg.Client({ connectionString: testPgUrl(), connectionTimeoutMillis: 30_000 });
  c.on('error', () => {});
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end().catch(() => {});
  }
}

describe('two postern processes on one PostgreSQL and one mail directory', { timeout: 300_000 }, () => {
  let db: TestDatabase;
  let A: ProcessServer;
  let B: ProcessServer;
  let bCache: string;
  let bData: string;

  before(async () => {
    db = await createTestDatabase({ prefix: 'cluster_imap' });
    const listeners = { smtp: { port: 0, host: '127.0.0.1' }, submission: false, smtps: false, imap: { port: 0, host: '127.0.0.1' }, imaps: false, pop3: { port: 0, host: '127.0.0.1' }, pop3s: false, admin: false, http: false, https: false, managesieve: false };
    const base = { hostname: 'mx.example.com', state: { type: 'postgres', url: db.url }, directory: { type: 'ldif', file: join(ROOT, 'fixtures/ad/corp.ldif') }, listeners };
    const a = writeConfig(base);
    // B keeps its copies of the folder index outside its dataDir, as a node whose dataDir is a shared mount would.
    bCache = mkdtempSync(join(tmpdir(), 'postern-index-cache-'));
    const b = writeConfig({ ...base, state: { ...base.state, cacheDir: bCache } });
    bData = b.dataDir;
    mkdirSync(join(a.dataDir, 'mail'), { recursive: true });
    symlinkSync(join(a.dataDir, 'mail'), join(b.dataDir, 'mail'));
    for (const args of [
      ['domain', 'add', 'example.com'],
      ['settings', 'set', 'filter.antivirus', 'no', 'filter.spam', 'no', 'mailbox.allowUnencrypted', 'yes'],
    ]) {
      const r = await runCli(args, { config: a.file });
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.err}`);
    }
    A = await startProcessServer(a.file, { timeoutMs: 120_000 });
    B = await startProcessServer(b.file, { timeoutMs: 120_000 });
  });

  after(async () => {
    await Promise.all([A?.stop(), B?.stop()]);
    await db?.drop();
    if (bCache) rmSync(bCache, { recursive: true, force: true });
  });

  it("B's copies of the folder index are in its state.cacheDir, none in its dataDir", async () => {
    await smtpSend(A.ports.smtp!, 'john@example.com', msg('for the cache'));
    const c = await RawImap.login(B.ports.imap!, 'john.smith', PASSWORD);
    await waitFor('the message on B', async () => /^\* [1-9]\d* EXISTS/m.test(await c.ok(`c${Date.now()}`, 'SELECT INBOX')), { timeoutMs: 60_000, intervalMs: 200 });
    c.close();
    assert.ok(readdirSync(bCache).some((f) => f.endsWith('.db')), `no copy in ${bCache}: ${readdirSync(bCache).join(', ')}`);
    assert.equal(existsSync(join(bData, 'index-cache')), false);
  });

  it("a delivery through A's SMTP reaches an IDLE session on B (measured latency printed)", async () => {
    // INBOX exists once the first message is there.
    await smtpSend(A.ports.smtp!, 'john@example.com', msg('first'));
    const c = await RawImap.login(B.ports.imap!, 'john.smith', PASSWORD);
    const sel = await waitFor('the first message on B', async () => {
      const r = await c.ok(`s${Date.now()}`, 'SELECT INBOX');
      const n = Number(/^\* (\d+) EXISTS/m.exec(r)?.[1] ?? 0);
      return n > 0 ? n : undefined;
    }, { timeoutMs: 60_000, intervalMs: 200 });
    c.send('i1 IDLE\r\n');
    await c.until(/^\+ /m);
    const t0 = Date.now();
    await smtpSend(A.ports.smtp!, 'john@example.com', msg('second'));
    const accepted = Date.now() - t0;
    await c.until(new RegExp(`^\\* ${sel + 1} EXISTS`, 'm'), 5000);
    console.log(`# SMTP on A → EXISTS in IDLE on B: ${Date.now() - t0} ms (of which SMTP until 250: ${accepted} ms)`);
    c.send('DONE\r\n');
    await c.until(/^i1 OK/m);
    c.close();
  });

  it("a STORE through A reaches B's IDLE", async () => {
    const c = await RawImap.login(B.ports.imap!, 'john.smith', PASSWORD);
    await c.ok('b1', 'SELECT INBOX');
    c.send('b2 IDLE\r\n');
    await c.until(/^\+ /m);
    const a = await RawImap.login(A.ports.imap!, 'john.smith', PASSWORD);
    await a.ok('a1', 'SELECT INBOX');
    const t0 = Date.now();
    await a.ok('a2', 'STORE 1 +FLAGS (\\Flagged)');
    await c.until(/^\* 1 FETCH \(.*\\Flagged/m, 5000);
    console.log(`# STORE on A → FETCH in IDLE on B: ${Date.now() - t0} ms`);
    c.send('DONE\r\n');
    await c.until(/^b2 OK/m);
    a.close();
    c.close();
  });

  it('concurrent APPENDs through A and B get distinct, increasing UIDs', async () => {
    const a = await RawImap.login(A.ports.imap!, 'john.smith', PASSWORD);
    const b = await RawImap.login(B.ports.imap!, 'john.smith', PASSWORD);
    const uidOf = (r: string) => Number(/APPENDUID \d+ (\d+)/.exec(r)![1]);
    const per = 10;
    const results = await Promise.all([
      (async () => { const u: number[] = []; for (let i = 0; i < per; i++) u.push(uidOf(await append(a, `a${i}`, 'INBOX', msg(`A${i}`)))); return u; })(),
      (async () => { const u: number[] = []; for (let i = 0; i < per; i++) u.push(uidOf(await append(b, `b${i}`, 'INBOX', msg(`B${i}`)))); return u; })(),
    ]);
    for (const u of results) for (let i = 1; i < u.length; i++) assert.ok(u[i]! > u[i - 1]!, `increasing per node: ${u.join(',')}`);
    const all = results.flat();
    assert.equal(new Set(all).size, all.length, `distinct: ${all.join(',')}`);
    // Each UID is the message appended under it, on both nodes (the files, not only the index).
    await a.ok('as', 'SELECT INBOX');
    await b.ok('bs', 'SELECT INBOX');
    const [onA, onB] = [await subjects(a, 'af'), await subjects(b, 'bf')];
    results.forEach((u, n) => u.forEach((uid, i) => {
      const want = `${n === 0 ? 'A' : 'B'}${i}`;
      assert.equal(onA.get(uid), want, `UID ${uid} on A`);
      assert.equal(onB.get(uid), want, `UID ${uid} on B`);
    }));
    assert.deepEqual([...onA.entries()], [...onB.entries()]);
    a.close();
    b.close();
  });

  it('SMTP deliveries through A and APPENDs through B into one INBOX at once: every message, distinct UIDs, on both', async () => {
    const a = await RawImap.login(A.ports.imap!, 'john.smith', PASSWORD);
    const b = await RawImap.login(B.ports.imap!, 'john.smith', PASSWORD);
    const per = 8;
    const appended: number[] = [];
    await Promise.all([
      (async () => { for (let i = 0; i < per; i++) await smtpSend(A.ports.smtp!, 'john@example.com', msg(`S${i}`)); })(),
      (async () => { for (let i = 0; i < per; i++) appended.push(Number(/APPENDUID \d+ (\d+)/.exec(await append(b, `m${i}`, 'INBOX', msg(`M${i}`)))![1])); })(),
    ]);
    // Delivery is queued: wait until A's INBOX lists all of them.
    const onA = await waitFor('every delivered message on A', async () => {
      await cmd(a, `n${Date.now()}`, 'SELECT INBOX');
      const m = await subjects(a, `f${Date.now()}`);
      const tags = [...m.values()];
      return Array.from({ length: per }, (_, i) => `S${i}`).every((t) => tags.includes(t)) ? m : undefined;
    }, { timeoutMs: 120_000, intervalMs: 300 });
    await b.ok('bs', 'SELECT INBOX');
    const onB = await subjects(b, 'bf');
    assert.deepEqual([...onB.entries()], [...onA.entries()], 'the same UIDs and messages on both nodes');
    appended.forEach((uid, i) => assert.equal(onA.get(uid), `M${i}`));
    const tags = [...onA.values()];
    assert.equal(new Set(tags).size, tags.length, `each message once: ${tags.join(',')}`);
    a.close();
    b.close();
  });

  it('the database refusing connections: IMAP NO [UNAVAILABLE] on both nodes, then it works again by itself', async () => {
    const a = await RawImap.login(A.ports.imap!, 'john.smith', PASSWORD);
    const b = await RawImap.login(B.ports.imap!, 'john.smith', PASSWORD);
    await pgAdmin(`ALTER DATABASE ${db.name} ALLOW_CONNECTIONS false`);
    try {
      await pgAdmin(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '${db.name}'`);
      const r1 = await cmd(a, 'u1', 'SELECT INBOX');
      assert.match(r1, /^u1 NO \[UNAVAILABLE\]/m, r1);
      b.send(`u2 APPEND INBOX {${Buffer.byteLength(msg('down'))}+}\r\n${msg('down')}\r\n`);
      const r2 = await b.until(/^u2 (OK|NO|BAD).*\r\n/m, 30_000);
      assert.match(r2, /^u2 NO \[UNAVAILABLE\]/m, r2);
    } finally {
      await pgAdmin(`ALTER DATABASE ${db.name} ALLOW_CONNECTIONS true`);
    }
    // The pools reconnect by themselves; the refused APPEND left nothing behind.
    await waitFor('SELECT works again on A', async () => /^w\d+ OK/m.test(await cmd(a, `w${Date.now()}`, 'SELECT INBOX')) || undefined, { timeoutMs: 60_000, intervalMs: 300 });
    await b.ok('u3', 'SELECT INBOX');
    assert.equal([...(await subjects(b, 'u4')).values()].includes('down'), false);
    const r = await append(b, 'u5', 'INBOX', msg('up again'));
    const uid = Number(/APPENDUID \d+ (\d+)/.exec(r)![1]);
    await a.ok('u6', 'NOOP');
    assert.equal((await subjects(a, 'u7')).get(uid), 'up again');
    a.close();
    b.close();
  });

  it('a POP3 maildrop locked on A is refused on B', async () => {
    const a = await pop3Login(A.ports.pop3!);
    assert.match(a.reply, /^\+OK/);
    const b = await pop3Login(B.ports.pop3!);
    assert.match(b.reply, /^-ERR \[IN-USE\]/);
    await b.quit();
    await a.quit();
  });
});
