/**
 * The mailbox registry seen by two nodes (issue 16): the same cases against the SQLite registry (two connections on
 * one settings.db, as the server and the CLI are today) and the PostgreSQL registry (two nodes, each with its own
 * dataDir and copy, on one database of the run's PostgreSQL, sharing one mail directory), driven through the
 * lifecycle functions the server runs (reconcileMailboxes, mailboxEnabled). Then what only PostgreSQL has: the
 * first node seeds an empty registry, an erase that began is never raced by a restore, a stopped PostgreSQL is a
 * TempFailure that changes nothing (reads go on from the copy), and everything resumes when it is back.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import pg from 'pg';
import { encodeGuid } from '../../../src/directory/guid.ts';
import { LdifDirectory } from '../../../src/directory/ldif/ldif-directory.ts';
import { parseLdif } from '../../../src/directory/ldif/parse.ts';
import type { Directory, UserEntry } from '../../../src/directory/types.ts';
import { TempFailure } from '../../../src/lib/errors.ts';
import { createLogger, silentLogger, type Logger } from '../../../src/lib/logger.ts';
import { Writable } from 'node:stream';
import { MailboxLifecycle, mailboxEnabled, reconcileMailboxes, type LifecycleDeps } from '../../../src/lifecycle/lifecycle.ts';
import { RunOnce } from '../../../src/cluster/run-once.ts';
import { MailboxRegistry } from '../../../src/lifecycle/registry.ts';
import { openSettings, type Settings } from '../../../src/settings/store.ts';
import { openState, type StateStore } from '../../../src/state/index.ts';
import { PgMailboxRegistry } from '../../../src/state/postgres/mailbox-registry.ts';
import { MaildirStore } from '../../../src/store/maildir.ts';
import { userOwner } from '../../../src/store/types.ts';
import { createTestDatabase, ownPostgres } from '../../helpers/pg-database.ts';
import { waitFor } from '../../helpers/wait.ts';

const G_ALICE = '0f1e2d3c-4b5a-4697-8877-665544332211';
const G_BOB = '11111111-2222-4333-8444-555555555555';

function userLdif(cn: string, login: string, guid: string): string {
  return `dn: CN=${cn},OU=Staff,DC=corp,DC=example
objectClass: user
objectGUID:: ${encodeGuid(guid).toString('base64')}
sAMAccountName: ${login}
mail: ${login}@example.com
userAccountControl: 512
`;
}

const ldif = (...entries: string[]) => new LdifDirectory(parseLdif(entries.join('\n')), 'test', { userPrincipalNameIsAddress: false });

/** The AD both nodes ask; the test deletes, renames and brings back accounts in it. */
class Swappable {
  constructor(public current: Directory) {}
  findGuid = (g: string) => this.current.findGuid(g);
  findLogin = (l: string) => this.current.findLogin(l);
  findGroup = (n: string) => this.current.findGroup(n);
  groupsOf = (u: UserEntry) => this.current.groupsOf(u);
}

interface Node {
  settings: Settings;
  registry: MailboxRegistry;
  store: MaildirStore;
  deps: LifecycleDeps;
  state?: StateStore;
  shared?: PgMailboxRegistry;
  close(): Promise<void>;
}

interface Pair {
  a: Node;
  b: Node;
  ad: Swappable;
  root: string;
  close(): Promise<void>;
}

const tmp = () => mkdtempSync(join(tmpdir(), 'postern-registry-'));
const pgConfig = (url: string) => ({ type: 'postgres' as const, url, poolSize: 4, connectTimeoutMs: 3000, statementTimeoutMs: 15000 });

function localNode(settings: Settings, root: string, ad: Swappable, log: Logger = silentLogger): Omit<Node, 'close'> {
  const registry = new MailboxRegistry({ root, settings, log });
  const store = new MaildirStore({ root, hostname: 'mx.example.com', locate: (o) => registry.locate(o) });
  return { settings, registry, store, deps: { registry, directory: ad, settings, log: silentLogger } };
}

async function pgNode(url: string, root: string, ad: Swappable, dir = tmp(), log: Logger = silentLogger): Promise<Node> {
  const settings = openSettings(dir);
  const state = openState(pgConfig(url), silentLogger, { nodeId: dir });
  const node = localNode(settings, root, ad, log);
  const shared = new PgMailboxRegistry({ pg: state.pg!, registry: node.registry, log: silentLogger, nodeId: dir });
  node.registry.attachShared(shared);
  try {
    await state.start(settings);
    await shared.start();
  } catch (err) {
    await shared.close();
    await state.close();
    settings.close();
    throw err;
  }
  return {
    ...node,
    state,
    shared,
    async close() {
      await shared.close();
      await state.close();
      settings.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const aliceAd = () => ldif(userLdif('Alice', 'alice', G_ALICE), userLdif('Bob', 'bob', G_BOB));
const onlyBob = () => ldif(userLdif('Bob', 'bob', G_BOB));

/** Two nodes on a new database of the test's own (on `baseUrl`'s server when given), sharing one mail root and one AD. */
async function twoPgNodes(t: TestContext, prefix: string, baseUrl?: string, logA?: Logger): Promise<{ url: string; ad: Swappable; root: string; a: Node; b: Node }> {
  const db = await createTestDatabase({ owner: t, prefix, ...(baseUrl ? { baseUrl } : {}) });
  const mail = tmp();
  t.after(() => rmSync(mail, { recursive: true, force: true }));
  const ad = new Swappable(aliceAd());
  const root = join(mail, 'mail');
  const a = await pgNode(db.url, root, ad, undefined, logA);
  t.after(() => a.close());
  const b = await pgNode(db.url, root, ad);
  t.after(() => b.close());
  return { url: db.url, ad, root, a, b };
}

const backends: { name: string; open(t: { after(fn: () => unknown): void }): Promise<Pair> }[] = [
  {
    name: 'sqlite (one settings.db, two connections)',
    async open() {
      const dir = tmp();
      const root = join(dir, 'mail');
      const ad = new Swappable(aliceAd());
      const sa = openSettings(dir);
      const sb = openSettings(dir);
      const node = (s: Settings): Node => ({ ...localNode(s, root, ad), close: async () => s.close() });
      const a = node(sa);
      const b = node(sb);
      return {
        a,
        b,
        ad,
        root,
        async close() {
          await a.close();
          await b.close();
          rmSync(dir, { recursive: true, force: true });
        },
      };
    },
  },
  {
    name: 'postgres (two nodes, two dataDirs, one database, one mail directory)',
    async open(t) {
      const db = await createTestDatabase({ owner: t, prefix: 'mbxreg' });
      const mail = tmp();
      const root = join(mail, 'mail');
      const ad = new Swappable(aliceAd());
      const a = await pgNode(db.url, root, ad);
      const b = await pgNode(db.url, root, ad);
      return {
        a,
        b,
        ad,
        root,
        async close() {
          await a.close();
          await b.close();
          rmSync(mail, { recursive: true, force: true });
        },
      };
    },
  },
];

const msg = (s: string) => Buffer.from(`From: a@b.example\r\nSubject: ${s}\r\n\r\nbody\r\n`);

async function user(ad: Swappable, login: string): Promise<UserEntry> {
  const u = await ad.current.findLogin(login);
  assert.ok(u, login);
  return u;
}

/** Alice has a mailbox with one message and a quota override, known to both nodes. */
async function aliceWithMail(p: Pair): Promise<UserEntry> {
  const alice = await user(p.ad, 'alice');
  assert.equal(await mailboxEnabled(p.a.deps, alice), true);
  await p.a.store.deliver(userOwner(alice), msg('for alice'));
  await waitFor('B to know alice\'s mailbox', () => p.b.registry.get(G_ALICE)?.dir === `users/${G_ALICE}`);
  p.a.settings.setUser('alice', { quotaMB: 77 });
  await waitFor('B to have alice\'s override', () => p.b.settings.getUser('alice')?.quotaMB === 77);
  return alice;
}

for (const backend of backends) {
  describe(`mailbox registry on ${backend.name}`, () => {
    test('a mailbox registered through A is the same directory on B; registering one GUID on both at once makes one', async (t) => {
      const p = await backend.open(t);
      t.after(() => p.close());
      const alice = await aliceWithMail(p);
      assert.equal(p.b.store.maildirPath(userOwner(alice)), p.a.store.maildirPath(userOwner(alice)));
      const bob = await user(p.ad, 'bob');
      const [da, db] = await Promise.all([p.a.registry.register({ login: bob.login, guid: bob.guid! }), p.b.registry.register({ login: bob.login, guid: bob.guid! })]);
      assert.equal(da, `users/${G_BOB}`);
      assert.equal(db, da);
      await waitFor('both to list two mailboxes', () => p.a.registry.list().length === 2 && p.b.registry.list().length === 2);
    });

    test('an account deleted in AD: orphaned on both when one node reconciles, exactly once when both do', async (t) => {
      const p = await backend.open(t);
      t.after(() => p.close());
      await aliceWithMail(p);
      p.ad.current = onlyBob();
      const [ra, rb] = await Promise.all([reconcileMailboxes(p.a.deps, { guid: G_ALICE }), reconcileMailboxes(p.b.deps, { guid: G_ALICE })]);
      assert.deepEqual([...ra.orphaned, ...rb.orphaned], [G_ALICE], 'one node orphaned it');
      await waitFor('A to see it orphaned', () => p.a.registry.get(G_ALICE)?.orphanedAt);
      await waitFor('B to see it orphaned', () => p.b.registry.get(G_ALICE)?.orphanedAt);
      assert.equal(p.a.registry.get(G_ALICE)!.orphanedAt, p.b.registry.get(G_ALICE)!.orphanedAt);
      // The override was held aside once (not cleared twice, losing it), and the login is free on both nodes.
      await waitFor('B to see the override held aside', () => p.b.settings.getUser('alice') === null);
      await waitFor('A to see the override held aside', () => p.a.settings.getUser('alice') === null);
      // Neither node lets mail or a login in for it.
      const alice = { ...(await user(new Swappable(aliceAd()), 'alice')) };
      p.ad.current = onlyBob();
      assert.equal(await mailboxEnabled(p.b.deps, alice), false);
    });

    test('a reanimated account (same objectGUID) is restored on both, with its override, exactly once', async (t) => {
      const p = await backend.open(t);
      t.after(() => p.close());
      await aliceWithMail(p);
      p.ad.current = onlyBob();
      await reconcileMailboxes(p.a.deps, { guid: G_ALICE });
      await waitFor('B to see it orphaned', () => p.b.registry.get(G_ALICE)?.orphanedAt);
      p.ad.current = aliceAd(); // the AD recycle bin
      const [ra, rb] = await Promise.all([reconcileMailboxes(p.a.deps), reconcileMailboxes(p.b.deps)]);
      assert.deepEqual([...ra.restored, ...rb.restored], [G_ALICE], 'one node restored it');
      await waitFor('A to see it active', () => p.a.registry.get(G_ALICE) && !p.a.registry.get(G_ALICE)!.orphanedAt);
      await waitFor('B to see it active', () => p.b.registry.get(G_ALICE) && !p.b.registry.get(G_ALICE)!.orphanedAt);
      await waitFor('B to have the override back', () => p.b.settings.getUser('alice')?.quotaMB === 77);
      await waitFor('A to have the override back', () => p.a.settings.getUser('alice')?.quotaMB === 77);
      const alice = await user(p.ad, 'alice');
      assert.equal(await mailboxEnabled(p.b.deps, alice), true);
      assert.ok(existsSync(join(p.b.store.maildirPath(userOwner(alice)), 'new')), 'the mail is still there');
    });

    test('the sweep on both nodes at once erases an expired orphan exactly once, and both forget it', async (t) => {
      const p = await backend.open(t);
      t.after(() => p.close());
      const alice = await aliceWithMail(p);
      const maildir = p.a.store.maildirPath(userOwner(alice));
      await p.a.settings.apply(() => p.a.settings.set('mailbox.deletedAccountRetentionDays', 0));
      await waitFor('B to read retention 0', () => p.b.settings.get('mailbox.deletedAccountRetentionDays') === 0);
      p.ad.current = onlyBob();
      const [ra, rb] = await Promise.all([reconcileMailboxes(p.a.deps), reconcileMailboxes(p.b.deps)]);
      assert.deepEqual([...ra.erased, ...rb.erased], [G_ALICE], 'one node erased it');
      assert.equal(existsSync(maildir), false);
      await waitFor('A to forget it', () => p.a.registry.get(G_ALICE) === undefined);
      await waitFor('B to forget it', () => p.b.registry.get(G_ALICE) === undefined);
      assert.equal(p.b.registry.get(G_BOB), undefined, 'bob never had a mailbox');
      // Another sweep finds nothing to do on either.
      const again = await Promise.all([reconcileMailboxes(p.a.deps), reconcileMailboxes(p.b.deps)]);
      assert.deepEqual(again.flatMap((r) => [...r.orphaned, ...r.erased]), []);
    });

    test('a rename in AD: the mailbox and the override follow it on both nodes', async (t) => {
      const p = await backend.open(t);
      t.after(() => p.close());
      await aliceWithMail(p);
      p.ad.current = ldif(userLdif('Alice', 'alice.old', G_ALICE), userLdif('Bob', 'bob', G_BOB));
      const renamed = await user(p.ad, 'alice.old');
      const [ea, eb] = await Promise.all([mailboxEnabled(p.a.deps, renamed), mailboxEnabled(p.b.deps, renamed)]);
      assert.deepEqual([ea, eb], [true, true]);
      await waitFor('B to see the new login', () => p.b.registry.get(G_ALICE)?.login === 'alice.old');
      await waitFor('B to see the override moved', () => p.b.settings.getUser('alice.old')?.quotaMB === 77 && p.b.settings.getUser('alice') === null);
      assert.equal(p.a.registry.get(G_ALICE)?.login, 'alice.old');
      // Whichever node moved the override, the other has it through the settings' own sync.
      await waitFor('A to see the override moved', () => p.a.settings.getUser('alice.old')?.quotaMB === 77 && p.a.settings.getUser('alice') === null);
    });
  });
}

describe('mailbox registry on postgres only', () => {
  test('the copy\'s columns are columns of the shared table', async (t) => {
    const db = await createTestDatabase({ owner: t, prefix: 'mbxcols' });
    const mail = tmp();
    t.after(() => rmSync(mail, { recursive: true, force: true }));
    const node = await pgNode(db.url, join(mail, 'mail'), new Swappable(aliceAd()));
    t.after(() => node.close());
    const sqlite = (node.settings.db.prepare('PRAGMA table_info(mailboxes)').all() as { name: string }[]).map((c) => c.name);
    const r = await node.state!.pg!.query<{ column_name: string }>(
      "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = 'mailboxes'",
    );
    const shared = new Set(r.rows.map((c) => c.column_name));
    for (const col of sqlite) assert.ok(shared.has(col), col);
  });

  test('the first node seeds an empty registry with its mailboxes; a later node takes the registry\'s', async (t) => {
    const db = await createTestDatabase({ owner: t, prefix: 'mbxseed' });
    const mail = tmp();
    t.after(() => rmSync(mail, { recursive: true, force: true }));
    const root = join(mail, 'mail');
    const ad = new Swappable(aliceAd());
    // A single node with a mailbox, moved to a cluster; another node whose copy has a row nobody else knows.
    const dirA = tmp();
    const la = openSettings(dirA);
    new MailboxRegistry({ root, settings: la }).dirFor({ login: 'alice', guid: G_ALICE });
    la.close();
    const dirB = tmp();
    const lb = openSettings(dirB);
    new MailboxRegistry({ root, settings: lb }).dirFor({ login: 'bob', guid: G_BOB });
    lb.close();
    const a = await pgNode(db.url, root, ad, dirA);
    t.after(() => a.close());
    const b = await pgNode(db.url, root, ad, dirB);
    t.after(() => b.close());
    assert.equal(b.registry.get(G_ALICE)?.dir, `users/${G_ALICE}`);
    assert.equal(b.registry.get(G_BOB), undefined, 'the copy is the registry\'s');
    assert.equal(a.registry.get(G_BOB), undefined);
  });

  test('an erase that has begun on one node is never raced by a restore on the other', async (t) => {
    const { ad, a, b } = await twoPgNodes(t, 'mbxrace');
    const alice = await user(ad, 'alice');
    assert.equal(await mailboxEnabled(a.deps, alice), true);
    await a.store.deliver(userOwner(alice), msg('x'));
    ad.current = onlyBob();
    await reconcileMailboxes(a.deps, { guid: G_ALICE });
    await waitFor('B to see it orphaned', () => b.registry.get(G_ALICE)?.orphanedAt);
    // A claims the erase (as erase() does first); meanwhile the account comes back and B is asked.
    assert.ok(await a.shared!.beginErase(G_ALICE));
    assert.equal(await b.shared!.beginErase(G_ALICE), undefined, 'a second erase waits for the first');
    ad.current = aliceAd();
    assert.equal(await b.registry.restore({ login: 'alice', guid: G_ALICE }), false);
    assert.equal(await mailboxEnabled(b.deps, alice), false, 'a mailbox being erased takes no mail');
    await a.shared!.endErase(G_ALICE);
    await waitFor('B to forget it', () => b.registry.get(G_ALICE) === undefined);
    // The account, back in AD, gets a new (empty) mailbox: the erased GUID registers anew.
    assert.equal(await mailboxEnabled(b.deps, alice), true);
    await waitFor('A to see the new registration', () => a.registry.get(G_ALICE) && !a.registry.get(G_ALICE)!.orphanedAt);
  });

  test('the hourly sweep started on both nodes runs on one: the other neither asks AD nor decides', async (t) => {
    const { ad, a, b } = await twoPgNodes(t, 'mbxonce');
    assert.equal(await mailboxEnabled(a.deps, await user(ad, 'alice')), true);
    await waitFor('B to know alice', () => b.registry.get(G_ALICE));
    ad.current = onlyBob();
    const claims: boolean[] = [];
    const asked = { a: 0, b: 0 };
    const lifecycle = (n: Node, name: 'a' | 'b') => {
      const gate = new RunOnce(n.state!.pg!, n.state!.nodeId);
      const counting = { ...n.deps, directory: { ...ad, findGuid: (g: string) => (asked[name]++, ad.findGuid(g)) } };
      return new MailboxLifecycle(counting, 60 * 60_000, {
        claim: async (job, ms) => {
          const mine = await gate.claim(job, ms);
          claims.push(mine);
          return mine;
        },
        done: (job) => gate.done(job),
      });
    };
    const la = lifecycle(a, 'a');
    const lb = lifecycle(b, 'b');
    t.after(() => Promise.all([la.stop(), lb.stop()]));
    la.start();
    lb.start();
    await waitFor('both ticks to have asked the gate', () => claims.length === 2);
    assert.deepEqual(claims.filter(Boolean), [true], JSON.stringify(claims));
    await waitFor('the one sweep to orphan alice on both', () => a.registry.get(G_ALICE)?.orphanedAt && b.registry.get(G_ALICE)?.orphanedAt);
    await Promise.all([la.stop(), lb.stop()]);
    assert.equal(Math.min(asked.a, asked.b), 0, JSON.stringify(asked));
    assert.equal(Math.max(asked.a, asked.b), 1, JSON.stringify(asked));
  });

  /** Node A's Settings.apply fails temporarily for its next `times` calls (PostgreSQL failing just then). */
  function failApply(n: Node, times: number): { calls: number } {
    const real = n.settings.apply.bind(n.settings);
    const seen = { calls: 0 };
    n.settings.apply = (<T>(fn: () => T): Promise<T> => {
      if (seen.calls++ < times) return Promise.reject(new TempFailure('settings: PostgreSQL is unreachable (injected)'));
      return real(fn);
    }) as Settings['apply'];
    return seen;
  }

  test('the overrides follow an orphan decision whose settings change failed: retried until it goes through', async (t) => {
    const p = await twoPgNodes(t, 'mbxretry');
    await aliceWithMail({ ...p, close: async () => undefined });
    const seen = failApply(p.a, 1);
    p.ad.current = onlyBob();
    const r = await reconcileMailboxes(p.a.deps, { guid: G_ALICE });
    assert.deepEqual(r.orphaned, [G_ALICE]);
    assert.equal(p.a.settings.getUser('alice')?.quotaMB, 77, 'the first try failed: not held aside yet');
    await waitFor('A to hold the override aside after the retry', () => p.a.settings.getUser('alice') === null);
    await waitFor('B to see it held aside', () => p.b.settings.getUser('alice') === null);
    assert.equal(seen.calls, 2);
  });

  test('a retried orphan clear is dropped when the account came back meanwhile: the override stays', async (t) => {
    const lines: { msg?: string }[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l) as { msg?: string });
        done();
      },
    });
    const p = await twoPgNodes(t, 'mbxretry2', undefined, createLogger('info', sink));
    await aliceWithMail({ ...p, close: async () => undefined });
    failApply(p.a, 1);
    p.ad.current = onlyBob();
    assert.deepEqual((await reconcileMailboxes(p.a.deps, { guid: G_ALICE })).orphaned, [G_ALICE]);
    await waitFor('B to see it orphaned', () => p.b.registry.get(G_ALICE)?.orphanedAt);
    p.ad.current = aliceAd(); // restored from the AD recycle bin before the retry is due
    assert.deepEqual((await reconcileMailboxes(p.b.deps)).restored, [G_ALICE]);
    await waitFor('A to see alice active again', () => p.a.registry.get(G_ALICE) && !p.a.registry.get(G_ALICE)!.orphanedAt);
    await waitFor('the retry to find the decision gone', () => lines.some((l) => /decided otherwise meanwhile/.test(l.msg ?? '')));
    assert.equal(p.a.settings.getUser('alice')?.quotaMB, 77);
    assert.equal(p.b.settings.getUser('alice')?.quotaMB, 77);
  });

  describe('PostgreSQL stopped and started again', () => {
    const own = ownPostgres();

    test('writes are TempFailures that change nothing, lookups go on from the copy; after the restart both follow again', async (t) => {
      const { url, ad, root, a, b } = await twoPgNodes(t, 'mbxdown', own.url);
      const alice = await user(ad, 'alice');
      const bob = await user(ad, 'bob');
      assert.equal(await mailboxEnabled(a.deps, alice), true);
      await waitFor('B to know alice', () => b.registry.get(G_ALICE));

      await own.stop();
      // A known mailbox is still found (delivery and logins go on); a new one cannot be registered: the RCPT check
      // rejects with TempFailure (451 4.3.0 in SMTP, NO [UNAVAILABLE] at an IMAP login), never "unknown user".
      assert.equal(b.store.maildirPath(userOwner(alice)), join(root, 'users', G_ALICE, 'Maildir'));
      await assert.rejects(mailboxEnabled(b.deps, bob), (err: unknown) => err instanceof TempFailure);
      // A delivery for a GUID the copy does not know is deferred, not written where another node may decide otherwise.
      assert.throws(() => b.store.maildirPath(userOwner(bob)), (err: unknown) => err instanceof TempFailure);
      // The account deleted meanwhile: the reconcile cannot record it, and nothing is half-done.
      ad.current = onlyBob();
      await assert.rejects(a.registry.markOrphaned(G_ALICE), (err: unknown) => err instanceof TempFailure);
      assert.equal(a.registry.get(G_ALICE)?.orphanedAt, undefined);
      assert.equal(b.registry.get(G_ALICE)?.orphanedAt, undefined);
      assert.equal(b.registry.get(G_BOB), undefined);

      await own.start();
      await waitFor('A to reach PostgreSQL again', async () => (await a.state!.health())?.ok === true, { timeoutMs: 60_000 });
      // B's LISTEN connection was dropped by the restart: it must have come back for B to see this.
      const r = await waitFor(
        'the reconcile to go through',
        async () => {
          const res = await reconcileMailboxes(a.deps, { guid: G_ALICE }).catch(() => undefined);
          return res?.orphaned.length || a.registry.get(G_ALICE)?.orphanedAt ? res : false;
        },
        { timeoutMs: 60_000, intervalMs: 200 },
      );
      assert.ok(r);
      await waitFor('B to see alice orphaned', () => b.registry.get(G_ALICE)?.orphanedAt, { timeoutMs: 60_000 });
      assert.equal(await mailboxEnabled(b.deps, bob), true);
      await waitFor('A to know bob', () => a.registry.get(G_BOB), { timeoutMs: 60_000 });
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      const rows = await c.query('SELECT guid FROM mailboxes WHERE erased_at IS NULL ORDER BY guid');
      await c.end();
      assert.deepEqual(rows.rows.map((x) => x.guid), [G_ALICE, G_BOB]);
    });
  });
});
