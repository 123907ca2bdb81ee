/**
 * Two nodes on one PostgreSQL (issue 16), in one process: each node is its own MaildirStore + MaildirMailbox with
 * its own change hub, its own IMAP and POP3 listeners (port 0, raw clients) and its own PgMailEvents /
 * PgMaildropLocks, on one mail directory. Node B reaches the store through a symlink, so its Maildir paths differ
 * from A's as on nodes that mount a shared store elsewhere. A change made through A reaches B only through
 * PostgreSQL LISTEN/NOTIFY: the hubs are not shared, and a flag change or an APPEND (written into cur/) is not seen
 * by B's fs.watch on new/.
 *
 * PostgreSQL "going away" is a TCP proxy between the nodes and the real server that the test closes and opens, so
 * the shared server of the run stays up for the other test files. A protocol test (real listeners, no Samba): the
 * PostgreSQL test/run.ts starts for files that use test/helpers/pg-database.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, symlink } from 'node:fs/promises';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { startImap, type ImapServer } from '../../src/imap/server.ts';
import { silentLogger } from '../../src/lib/logger.ts';
import { TempFailure } from '../../src/lib/errors.ts';
import { startPop3, type Pop3Service } from '../../src/pop3/server.ts';
import { PgMaildropLocks } from '../../src/state/postgres/maildrop-locks.ts';
import { PgMailEvents } from '../../src/state/postgres/mail-events.ts';
import { PgState } from '../../src/state/postgres/pool.ts';
import { MaildirMailbox } from '../../src/store/maildir-mailbox.ts';
import { MaildirStore } from '../../src/store/maildir.ts';
import type { FolderChange, MailboxListChange } from '../../src/store/mailbox.ts';
import type { MailboxOwner } from '../../src/store/types.ts';
import { EventHub, FolderEvents } from '../../src/store/watch.ts';
import { append, HOST, ldifAuth, msg, PASSWORD, TLS } from '../helpers/imap-fixture.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/pg-database.ts';
import { RawImap } from '../helpers/raw-imap.ts';
import { waitFor } from '../helpers/wait.ts';

const JOHN: MailboxOwner = { kind: 'user', login: 'john.smith' };

/** A loopback TCP proxy to PostgreSQL: `down()` cuts every connection and refuses new ones until `up()`. */
class PgProxy {
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private open = true;
  port = 0;

  constructor(private readonly target: { host: string; port: number }) {
    this.server = createServer((client) => {
      if (!this.open) return client.destroy();
      const upstream = connect(this.target.port, this.target.host);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => undefined);
      }
      client.pipe(upstream).pipe(client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
  }

  down(): void {
    this.open = false;
    for (const s of this.sockets) s.destroy();
  }

  up(): void {
    this.open = true;
  }

  url(dbUrl: string): string {
    const u = new URL(dbUrl);
    u.hostname = '127.0.0.1';
    u.port = String(this.port);
    return u.toString();
  }

  close(): Promise<void> {
    this.down();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

/** A minimal POP3 client: one reply line per command. */
class Pop3Client {
  private buf = '';
  private constructor(private readonly socket: Socket) {
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => (this.buf += d));
    socket.on('error', () => undefined);
  }

  static async open(port: number): Promise<Pop3Client> {
    const socket = connect(port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    const c = new Pop3Client(socket);
    assert.match(await c.line(), /^\+OK/);
    return c;
  }

  async line(): Promise<string> {
    return waitFor('a POP3 reply line', () => {
      const i = this.buf.indexOf('\r\n');
      if (i < 0) return undefined;
      const l = this.buf.slice(0, i);
      this.buf = this.buf.slice(i + 2);
      return l;
    }, { timeoutMs: 30_000, intervalMs: 10 });
  }

  async cmd(line: string): Promise<string> {
    this.socket.write(`${line}\r\n`);
    return this.line();
  }

  async login(user = 'john.smith'): Promise<string> {
    assert.match(await this.cmd(`USER ${user}`), /^\+OK/);
    return this.cmd(`PASS ${PASSWORD}`);
  }

  close(): void {
    this.socket.destroy();
  }
}

interface Node {
  name: string;
  store: MaildirStore;
  mailbox: MaildirMailbox;
  imap: ImapServer;
  pop3: Pop3Service;
  events: PgMailEvents;
  locks: PgMaildropLocks;
  pool: PgState;
}

const connectPg = (url: string) => new PgState({ url, poolSize: 4, connectTimeoutMs: 3000, statementTimeoutMs: 30_000 }, silentLogger);

type EventsOptions = Partial<ConstructorParameters<typeof PgMailEvents>[0]>;

/**
 * Nodes "a" and "b" of the mail events on a new database of the test's own (mail root /m, hubs of their own, one
 * pool), closed and dropped after the test; not started.
 */
async function twoEventNodes(t: TestContext, prefix: string, opts: { a?: EventsOptions; b?: EventsOptions } = {}) {
  const db = await createTestDatabase({ prefix });
  const pool = connectPg(db.url);
  const hubs = () => ({ folder: new FolderEvents(), list: new EventHub<MailboxListChange>() });
  const ha = hubs();
  const hb = hubs();
  const node = (name: string, h: ReturnType<typeof hubs>, o?: EventsOptions) =>
    new PgMailEvents({ url: db.url, db: pool, node: name, mailRoot: '/m', log: silentLogger, hubs: h, onDelivered: () => undefined, ...o });
  const a = node('a', ha, opts.a);
  const b = node('b', hb, opts.b);
  t.after(() => Promise.all([a.close(), b.close()]).then(() => pool.close()).then(() => db.drop()));
  return { a, b, ha, hb };
}

describe('two nodes on one PostgreSQL', { timeout: 300_000 }, () => {
  let db: TestDatabase;
  let dir: string;
  let proxy: PgProxy;
  const nodes: Node[] = [];
  const auth = ldifAuth();
  const settings = { get: (k: string) => ({ 'mailbox.imap': true, 'mailbox.pop3': true, 'mailbox.allowUnencrypted': true, 'mailbox.deletedToTrash': false })[k] };

  async function startNode(name: string, root: string): Promise<Node> {
    const url = proxy.url(db.url);
    const pool = connectPg(url);
    const store = new MaildirStore({ root, hostname: HOST });
    const hub = new FolderEvents();
    const mailbox = new MaildirMailbox({ store, quotaBytes: () => 0, log: silentLogger, debounceMs: 10, events: hub });
    const events = new PgMailEvents({
      url,
      db: pool,
      node: name,
      mailRoot: root,
      log: silentLogger,
      hubs: { folder: hub, list: new EventHub<MailboxListChange>() },
      onDelivered: (owner, folder) => mailbox.notifyDelivered(owner, folder),
    });
    await events.start();
    const locks = new PgMaildropLocks({ db: pool, node: name, log: silentLogger, leaseMs: 3000 });
    const common = { port: 0, host: '127.0.0.1', secure: false, tls: TLS, auth, mailbox, settings: settings as never, hostname: HOST, log: silentLogger };
    const imap = await startImap(common);
    const pop3 = await startPop3({ ...common, tls: { ...TLS, source: 'test', selfSigned: true }, locks });
    const node = { name, store, mailbox, imap, pop3, events, locks, pool };
    nodes.push(node);
    return node;
  }

  let A: Node;
  let B: Node;

  before(async () => {
    db = await createTestDatabase({ prefix: 'cluster_mail' });
    const u = new URL(db.url);
    proxy = new PgProxy({ host: u.hostname, port: Number(u.port || 5432) });
    await proxy.start();
    const setup = connectPg(db.url);
    await setup.migrate();
    await setup.close();
    dir = await mkdtemp(join(tmpdir(), 'postern-cluster-mail-'));
    await symlink(join(dir, 'mail'), join(dir, 'mnt-b'));
    A = await startNode('node-a', join(dir, 'mail'));
    B = await startNode('node-b', join(dir, 'mnt-b'));
    // INBOX exists on disk before B's session selects it (created by A's first APPEND otherwise).
    const c = await RawImap.login(A.imap.port, 'john.smith', PASSWORD);
    await append(c, 'a0', 'INBOX', msg('first'));
    c.close();
  });

  after(async () => {
    for (const n of nodes) {
      await n.imap.close();
      await n.pop3.close();
      await n.events.close();
      n.locks.close();
      n.mailbox.close();
      await n.pool.close();
    }
    await proxy?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
    await db?.drop();
  });

  /** B's session in IDLE on INBOX; returns it and the number of messages its SELECT reported. */
  async function idleOnB(): Promise<{ c: RawImap; exists: number }> {
    const c = await RawImap.login(B.imap.port, 'john.smith', PASSWORD);
    const sel = await c.ok('b1', 'SELECT INBOX');
    const exists = Number(/^\* (\d+) EXISTS/m.exec(sel)![1]);
    c.send('b2 IDLE\r\n');
    await c.until(/^\+ /m);
    return { c, exists };
  }

  it("an APPEND through A reaches B's IDLE as EXISTS (measured latency printed)", async () => {
    const { c, exists } = await idleOnB();
    const a = await RawImap.login(A.imap.port, 'john.smith', PASSWORD);
    const t0 = Date.now();
    await append(a, 'a1', 'INBOX', msg('appended on A'));
    const appendMs = Date.now() - t0;
    await c.until(new RegExp(`^\\* ${exists + 1} EXISTS`, 'm'), 5000);
    console.log(`# APPEND on A → EXISTS in IDLE on B: ${Date.now() - t0} ms (the APPEND itself took ${appendMs} ms)`);
    c.send('DONE\r\n');
    await c.until(/^b2 OK/m);
    a.close();
    c.close();
  });

  it("a STORE through A reaches B's IDLE as FETCH FLAGS", async () => {
    const { c } = await idleOnB();
    const a = await RawImap.login(A.imap.port, 'john.smith', PASSWORD);
    await a.ok('a1', 'SELECT INBOX');
    const t0 = Date.now();
    await a.ok('a2', 'STORE 1 +FLAGS (\\Flagged $Cluster)');
    await c.until(/^\* 1 FETCH \(.*FLAGS \([^)]*\\Flagged[^)]*\)/m, 5000);
    console.log(`# STORE on A → FETCH in IDLE on B: ${Date.now() - t0} ms`);
    c.send('DONE\r\n');
    await c.until(/^b2 OK/m);
    a.close();
    c.close();
  });

  it("a delivery on A (store.deliver + delivered) reaches B's IDLE as EXISTS", async () => {
    const { c, exists } = await idleOnB();
    const t0 = Date.now();
    await A.store.deliver(JOHN, Buffer.from(msg('delivered on A')));
    A.mailbox.notifyDelivered(JOHN);
    A.events.delivered(JOHN, 'INBOX');
    await c.until(new RegExp(`^\\* ${exists + 1} EXISTS`, 'm'), 5000);
    console.log(`# delivery on A → EXISTS in IDLE on B: ${Date.now() - t0} ms`);
    c.send('DONE\r\n');
    await c.until(/^b2 OK/m);
    c.close();
  });

  it("an EXPUNGE through A reaches B's IDLE as EXPUNGE", async () => {
    const { c, exists } = await idleOnB();
    const a = await RawImap.login(A.imap.port, 'john.smith', PASSWORD);
    await a.ok('a1', 'SELECT INBOX');
    await a.ok('a2', `STORE ${exists} +FLAGS (\\Deleted)`);
    await a.ok('a3', 'EXPUNGE');
    await c.until(new RegExp(`^\\* ${exists} EXPUNGE`, 'm'), 5000);
    c.send('DONE\r\n');
    await c.until(/^b2 OK/m);
    a.close();
    c.close();
  });

  it('a POP3 maildrop locked through A is refused on B until A quits', async () => {
    const a = await Pop3Client.open(A.pop3.port);
    assert.match(await a.login(), /^\+OK/);
    const b = await Pop3Client.open(B.pop3.port);
    assert.match(await b.login(), /^-ERR \[IN-USE\]/);
    // Another maildrop is not affected.
    const other = await Pop3Client.open(B.pop3.port);
    assert.match(await other.login('anna.bianchi'), /^\+OK/);
    assert.match(await other.cmd('QUIT'), /^\+OK/);
    assert.match(await a.cmd('QUIT'), /^\+OK/);
    // The lock row goes away asynchronously after QUIT: wait for B to get it.
    await waitFor('B to lock the maildrop after A quit', async () => {
      const b2 = await Pop3Client.open(B.pop3.port);
      const r = await b2.login();
      if (r.startsWith('+OK')) {
        assert.match(await b2.cmd('QUIT'), /^\+OK/);
        b2.close();
        return true;
      }
      assert.match(r, /^-ERR \[IN-USE\]/);
      b2.close();
      return false;
    }, { timeoutMs: 30_000, intervalMs: 100 });
    a.close();
    b.close();
    other.close();
  });

  it("a lock held by a node that died is free after its lease", async () => {
    const pool = connectPg(db.url);
    try {
      const dead = new PgMaildropLocks({ db: pool, node: 'node-dead', log: silentLogger, leaseMs: 1000 });
      assert.equal(await dead.acquire('anna.bianchi'), 'ok');
      dead.close(); // no more renewals, no release: a SIGKILLed node
      const live = new PgMaildropLocks({ db: pool, node: 'node-live', log: silentLogger, leaseMs: 1000 });
      assert.equal(await live.acquire('anna.bianchi'), 'in-use');
      await waitFor('the dead node\'s lease to run out', async () => (await live.acquire('anna.bianchi')) === 'ok', { timeoutMs: 30_000, intervalMs: 100 });
      live.release('anna.bianchi');
      live.close();
    } finally {
      await pool.close();
    }
  });

  it('a held lock is renewed: it outlives its lease while the session lives', async () => {
    const pool = connectPg(db.url);
    try {
      const holder = new PgMaildropLocks({ db: pool, node: 'node-holder', log: silentLogger, leaseMs: 600 });
      const other = new PgMaildropLocks({ db: pool, node: 'node-other', log: silentLogger, leaseMs: 600 });
      assert.equal(await holder.acquire('lease.renewal'), 'ok');
      // Past several leases (waiting for the database clock, not a sleep): still held.
      const { rows } = await pool.query("SELECT clock_timestamp() + interval '2 seconds' AS t");
      const until = (rows[0] as { t: Date }).t;
      await waitFor('two seconds of database time', async () => {
        const r = await pool.query('SELECT clock_timestamp() > $1 AS past', [until]);
        assert.equal(await other.acquire('lease.renewal'), 'in-use');
        return (r.rows[0] as { past: boolean }).past;
      }, { timeoutMs: 60_000, intervalMs: 100 });
      holder.release('lease.renewal');
      await waitFor('the released lock', async () => {
        const got = (await other.acquire('lease.renewal')) === 'ok';
        if (got) other.release('lease.renewal');
        return got;
      }, { timeoutMs: 30_000, intervalMs: 50 });
      holder.close();
      other.close();
    } finally {
      await pool.close();
    }
  });

  it('PostgreSQL unreachable: POP3 login answers -ERR [SYS/TEMP], then works again by itself; IDLE resumes', async () => {
    proxy.down();
    try {
      const b = await Pop3Client.open(B.pop3.port);
      assert.match(await b.login(), /^-ERR \[SYS\/TEMP\]/);
      // The session is still alive and usable.
      assert.match(await b.cmd('QUIT'), /^\+OK/);
      b.close();
      await assert.rejects(B.locks.acquire('someone.else'), TempFailure);
    } finally {
      proxy.up();
    }
    await waitFor('POP3 login on B to work again', async () => {
      const b = await Pop3Client.open(B.pop3.port);
      const r = await b.login();
      if (r.startsWith('+OK')) await b.cmd('QUIT');
      b.close();
      return r.startsWith('+OK');
    }, { timeoutMs: 60_000, intervalMs: 200 });
    // The LISTEN connections reconnected by themselves: a change through A reaches B again.
    await waitFor('both LISTEN connections back', () => A.events.isListening() && B.events.isListening(), { timeoutMs: 60_000 });
    const { c, exists } = await idleOnB();
    const a = await RawImap.login(A.imap.port, 'john.smith', PASSWORD);
    await append(a, 'a1', 'INBOX', msg('after the outage'));
    await c.until(new RegExp(`^\\* ${exists + 1} EXISTS`, 'm'), 5000);
    c.send('DONE\r\n');
    await c.until(/^b2 OK/m);
    a.close();
    c.close();
  });
});

describe('PgMailEvents carries changes between hubs', { timeout: 120_000 }, () => {
  it('keys relative to each node\'s mail root; own changes are not echoed; deliveries reach the others only', async (t) => {
    const db = await createTestDatabase({ prefix: 'mail_events' });
    const pool = connectPg(db.url);
    const make = (node: string, root: string) => {
      const hub = new FolderEvents();
      const list = new EventHub<MailboxListChange>();
      const delivered: [MailboxOwner, string][] = [];
      const events = new PgMailEvents({ url: db.url, db: pool, node, mailRoot: root, log: silentLogger, hubs: { folder: hub, list }, onDelivered: (o, f) => delivered.push([o, f]) });
      return { hub, list, delivered, events };
    };
    const a = make('a', '/srv/a/mail');
    const b = make('b', '/mnt/shared/mail');
    t.after(() => Promise.all([a.events.close(), b.events.close()]).then(() => pool.close()).then(() => db.drop()));
    await Promise.all([a.events.start(), b.events.start()]);
    const seenA: FolderChange[] = [];
    const seenB: FolderChange[] = [];
    a.hub.on('/srv/a/mail/john.smith/.Sent', (c) => seenA.push(c));
    b.hub.on('/mnt/shared/mail/john.smith/.Sent', (c) => seenB.push(c));
    const listB: MailboxListChange[] = [];
    b.list.on('/mnt/shared/mail/john.smith', (c) => listB.push(c));
    a.hub.emit('/srv/a/mail/john.smith/.Sent', { kind: 'flags', uid: 7, flags: ['\\Seen'], modseq: 42 });
    a.list.emit('/srv/a/mail/john.smith', { kind: 'created', name: 'Projects' } as unknown as MailboxListChange);
    a.events.delivered({ kind: 'user', login: 'john.smith' }, 'Sent');
    await waitFor('the change on B', () => seenB.length > 0 && b.delivered.length > 0 && listB.length > 0, { timeoutMs: 10_000 });
    assert.deepEqual(seenB, [{ kind: 'flags', uid: 7, flags: ['\\Seen'], modseq: 42 }]);
    assert.deepEqual(listB, [{ kind: 'created', name: 'Projects' }]);
    assert.deepEqual(b.delivered, [[{ kind: 'user', login: 'john.smith' }, 'Sent']]);
    // A heard its own change once, from its own hub, not again through PostgreSQL.
    b.hub.emit('/mnt/shared/mail/john.smith/.Sent', { kind: 'exists', uidNext: 9 });
    await waitFor('B\'s change on A', () => seenA.length >= 2, { timeoutMs: 10_000 });
    assert.deepEqual(seenA, [{ kind: 'flags', uid: 7, flags: ['\\Seen'], modseq: 42 }, { kind: 'exists', uidNext: 9 }]);
    assert.deepEqual(a.delivered, []);
  });

  it('a STORE of many messages is split into NOTIFYs under PostgreSQL\'s payload limit, none lost', async (t) => {
    const { a, b, hb, ha } = await twoEventNodes(t, 'mail_events_big');
    await Promise.all([a.start(), b.start()]);
    const got: number[] = [];
    hb.folder.on('/m/u/cur', (c) => c.kind === 'flags' && got.push(c.uid));
    for (let uid = 1; uid <= 2000; uid++) ha.folder.emit('/m/u/cur', { kind: 'flags', uid, flags: ['\\Seen', '$Label1'], modseq: 1000 + uid });
    await waitFor('2000 flag changes on B', () => got.length >= 2000, { timeoutMs: 30_000 });
    assert.deepEqual(got, Array.from({ length: 2000 }, (_, i) => i + 1));
  });

  it('changes made while a NOTIFY is in flight go together in the next one, in order; a folder\'s deliveries once', async (t) => {
    const delivered: [MailboxOwner, string][] = [];
    const { a, b, ha, hb } = await twoEventNodes(t, 'mail_events_coalesce', { b: { onDelivered: (o, f) => delivered.push([o, f]) } });
    await Promise.all([a.start(), b.start()]);
    const got: number[] = [];
    hb.folder.on('/m/u/cur', (c) => c.kind === 'flags' && got.push(c.uid));
    // One change per event-loop turn, as deliveries and STOREs of many sessions arrive: without coalescing each
    // would be a NOTIFY statement of its own.
    const n = 200;
    for (let uid = 1; uid <= n; uid++) {
      ha.folder.emit('/m/u/cur', { kind: 'flags', uid, flags: ['\\Seen'], modseq: uid });
      a.delivered(JOHN, 'INBOX');
      await new Promise((r) => setImmediate(r));
    }
    await waitFor(`${n} flag changes on B`, () => got.length >= n, { timeoutMs: 30_000 });
    assert.deepEqual(got, Array.from({ length: n }, (_, i) => i + 1), 'every change, in order');
    assert.ok(delivered.length >= 1 && delivered.length < n, `deliveries of one folder told fewer times than made: ${delivered.length}`);
    for (const d of delivered) assert.deepEqual(d, [JOHN, 'INBOX']);
    assert.ok(a.notifies < n, `NOTIFY statements for ${n} changes: ${a.notifies}`);
  });
});

describe('cluster: no NOTIFY for nobody', () => {
  it('a node alone sends no NOTIFY; one that joins gets what was kept back, then every change', async (t) => {
    // A long replay window: the test waits for conditions, not for the clock.
    const { a, b, ha, hb } = await twoEventNodes(t, 'mail_events_alone', { a: { replayMs: 600_000 } });
    await a.start();
    ha.folder.emit('/m/u/cur', { kind: 'flags', uid: 1, flags: ['\\Seen'], modseq: 1 });
    await waitFor('the change kept back (nobody listens)', () => a.skipped >= 1);
    assert.equal(a.notifies, 0, 'no NOTIFY statement while alone');
    const got: number[] = [];
    hb.folder.on('/m/u/cur', (c) => c.kind === 'flags' && got.push(c.uid));
    await b.start();
    // B's hello: A sends it the change of before B listened, then the new one, in order.
    ha.folder.emit('/m/u/cur', { kind: 'flags', uid: 2, flags: ['\\Seen'], modseq: 2 });
    await waitFor('both changes on B', () => got.length >= 2, { timeoutMs: 30_000 });
    assert.deepEqual(got, [1, 2]);
    assert.ok(a.notifies >= 1);
  });
});
