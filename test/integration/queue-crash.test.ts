/**
 * The queue contract under a hard crash (DESIGN.md §3 "Queue"): the SMTP 250 comes only after the message and its
 * envelope are committed to the spool, and delivery is at-least-once. A real `postern serve` process is killed with
 * SIGKILL right after it answered 250 (or in the middle of DATA), then started again on the same dataDir.
 *
 * Nothing here depends on winning a race: a message that must still be queued at the kill is made undeliverable
 * until the restart (the remote MX, a loopback sink found through the test DNS server, answers 451 until the test
 * lets it accept; or the recipient's Maildir is blocked by a file). The one case that does race (local delivery
 * vs. the kill) asserts only what holds either way: at least one copy after the restart.
 *
 * No Samba: the directory is the embedded LDIF (fixtures/ad/corp.ldif). Lives under test/integration because it
 * spawns server processes.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { Spool } from '../../src/queue/spool.ts';
import { MaildirStore } from '../../src/store/maildir.ts';
import { parseLdif } from '../../src/directory/ldif/parse.ts';
import { mapUser } from '../../src/directory/mapping.ts';
import { MailboxRegistry } from '../../src/lifecycle/registry.ts';
import { openSettings } from '../../src/settings/store.ts';
import type { MailboxOwner } from '../../src/store/types.ts';
import { ROOT, runCli, spawnCli, writeConfig } from '../helpers/cli.ts';
import { startDnsServer, type TestDnsServer } from '../helpers/dns-server.ts';
import { startProcessServer, type ProcessServer } from '../helpers/process-server.ts';
import { startSmtpSink, type SmtpSink } from '../helpers/smtp-sink.ts';

/** john.smith of the fixture, as the server's store places him: by objectGUID (issue 13). */
const JOHN: MailboxOwner = (() => {
  const entry = parseLdif(readFileSync(join(ROOT, 'fixtures/ad/corp.ldif'), 'utf8')).find((e) => e.attrs['samaccountname']?.[0] === 'john.smith')!;
  const user = mapUser(entry, { userPrincipalNameIsAddress: true });
  return { kind: 'user', login: user.login, guid: user.guid };
})();

/** The store of a dataDir as the server sees it (the mailbox registry in its settings.db); `use` runs with it open. */
function withStore<T>(dataDir: string, use: (store: MaildirStore) => T): T {
  const settings = openSettings(dataDir);
  try {
    const registry = new MailboxRegistry({ root: join(dataDir, 'mail'), settings });
    return use(new MaildirStore({ root: join(dataDir, 'mail'), hostname: 'mx.example.com', locate: (o) => registry.locate(o) }));
  } finally {
    settings.close();
  }
}

// ---- a raw SMTP client: the test must act on the 250 the moment it arrives, and stop in the middle of DATA ----

interface Reply {
  code: number;
  text: string;
}

class RawSmtp {
  private buf = '';
  private lines: string[] = [];
  private readonly replies: Reply[] = [];
  private readonly waiting: ((r: Reply) => void)[] = [];
  private closed: string | undefined;
  private constructor(readonly socket: Socket) {
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => this.onData(d));
    socket.on('error', (e) => (this.closed ??= e.message));
    socket.on('close', () => {
      this.closed ??= 'connection closed';
      for (const w of this.waiting.splice(0)) w({ code: 0, text: this.closed });
    });
  }

  static async open(port: number): Promise<RawSmtp> {
    const socket = connect(port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    const smtp = new RawSmtp(socket);
    const greeting = await smtp.read();
    assert.equal(greeting.code, 220, greeting.text);
    return smtp;
  }

  private onData(d: string): void {
    this.buf += d;
    let i: number;
    while ((i = this.buf.indexOf('\r\n')) >= 0) {
      const line = this.buf.slice(0, i);
      this.buf = this.buf.slice(i + 2);
      this.lines.push(line.slice(4));
      if (/^\d{3}(?: |$)/.test(line)) {
        const reply = { code: Number(line.slice(0, 3)), text: this.lines.join('\n') };
        this.lines = [];
        const w = this.waiting.shift();
        if (w) w(reply);
        else this.replies.push(reply);
      }
    }
  }

  read(): Promise<Reply> {
    const r = this.replies.shift();
    if (r) return Promise.resolve(r);
    if (this.closed) return Promise.resolve({ code: 0, text: this.closed });
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  async cmd(line: string, expect?: number): Promise<Reply> {
    this.socket.write(line + '\r\n');
    const r = await this.read();
    if (expect !== undefined) assert.equal(r.code, expect, `${line} → ${r.code} ${r.text}`);
    return r;
  }

  /** EHLO, MAIL FROM, RCPT TO and DATA up to the 354. */
  async startData(from: string, to: string): Promise<void> {
    await this.cmd('EHLO client.outside.example', 250);
    await this.cmd(`MAIL FROM:<${from}>`, 250);
    await this.cmd(`RCPT TO:<${to}>`, 250);
    await this.cmd('DATA', 354);
  }

  destroy(): void {
    this.socket.destroy();
  }
}

function message(token: string, to: string, bodyLines = 1): string {
  const body = Array.from({ length: bodyLines }, (_, i) => `token ${token} line ${i} ${'x'.repeat(60)}`);
  return [`From: <sender@outside.example>`, `To: <${to}>`, `Subject: crash ${token}`, `Message-ID: <${token}@outside.example>`, '', ...body].join('\r\n') + '\r\n';
}

/**
 * Sends one message and returns its queue id; `onAccepted` runs as soon as the 250 to the end of DATA is read (the
 * kill goes there, before anything else happens in this process).
 */
async function sendRaw(port: number, from: string, to: string, token: string, onAccepted?: () => void): Promise<string> {
  const smtp = await RawSmtp.open(port);
  try {
    await smtp.startData(from, to);
    smtp.socket.write(message(token, to) + '.\r\n');
    const r = await smtp.read();
    if (r.code === 250) onAccepted?.();
    assert.equal(r.code, 250, r.text);
    const id = /queued as (\S+)/.exec(r.text)?.[1];
    assert.ok(id, r.text);
    return id;
  } finally {
    smtp.destroy();
  }
}

// ---- the world around the server: DNS, a remote MX that answers 451 until told otherwise ----------------------

const REMOTE = 'remote.test';
const OUTSIDE = 'sender@outside.example';

interface QueueSummary {
  id: string;
  size: number;
  pending: { address: string; state: string }[];
  attempts: number;
}

/**
 * Each test takes 6-11 s on a quiet machine (two or three `postern serve` starts and a few retry intervals) and up to
 * 33 s on a loaded one: 120 s each, and no budget for the whole suite, which on a busy machine cancelled the last
 * tests.
 */
const PER_TEST = { timeout: 120_000 };

describe('queue: a hard crash (SIGKILL) after 250 loses nothing', () => {
  let dns: TestDnsServer;
  let sink: SmtpSink;
  /** Remote recipients the sink accepts; every other RCPT gets 451 (try again later). */
  const accepting = new Set<string>();
  const servers: ProcessServer[] = [];

  before(async () => {
    sink = await startSmtpSink({
      rcptReply: (address) => (accepting.has(address.toLowerCase()) ? { code: 250, message: 'ok' } : { code: 451, message: '4.3.0 not now, try again later' }),
    });
    dns = await startDnsServer({
      [REMOTE]: { MX: [{ exchange: `mx.${REMOTE}`, priority: 10 }] },
      [`mx.${REMOTE}`]: { A: ['127.0.0.1'] },
    });
  });
  after(async () => {
    await Promise.all(servers.map((s) => s.kill('SIGKILL')));
    await Promise.all([sink?.close(), dns?.close()]);
  });

  /** A config with its own dataDir: smtp on port 0, fast retries, MX lookups at the test DNS, MX port = the sink. */
  async function setup(t: TestContext): Promise<{ config: string; dataDir: string; start: () => Promise<ProcessServer> }> {
    const { file, dataDir } = writeConfig({
      hostname: 'mx.example.com',
      directory: { type: 'ldif', file: join(ROOT, 'fixtures/ad/corp.ldif') },
      listeners: { smtp: { port: 0, host: '127.0.0.1' }, submission: false, smtps: false, imap: false, imaps: false, pop3: false, pop3s: false, admin: false, http: false, https: false, managesieve: false },
      queue: { retryMinSeconds: 0.2, retryMaxSeconds: 0.5, scanIntervalSeconds: 0.2 },
      delivery: { remotePort: sink.port, connectTimeoutSeconds: 2 },
      dns: { servers: [dns.address], timeoutMs: 1000 },
    });
    for (const args of [
      ['domain', 'add', 'example.com'],
      ['domain', 'add', 'example.org'],
      // The test client is "the printer": allowed to relay, so a remote recipient is accepted on port 25.
      ['settings', 'set', 'smtp.relayFrom', '127.0.0.1'],
      // This file is about the queue, not the filters (tested against the harness daemons elsewhere).
      ['settings', 'set', 'filter.antivirus', 'no', 'filter.spam', 'no'],
    ]) {
      const r = await runCli(args, { config: file });
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.err}`);
    }
    return {
      config: file,
      dataDir,
      start: async () => {
        // owner: killed when the test ends, however it ends (test/harness/children.ts).
        const s = await startProcessServer(file, { owner: t });
        servers.push(s);
        assert.ok(s.ports.smtp > 0, s.stdout());
        return s;
      },
    };
  }

  async function queueList(config: string): Promise<QueueSummary[]> {
    const r = await spawnCli(['queue', 'list', '--json'], { config });
    assert.equal(r.code, 0, r.err);
    return JSON.parse(r.out) as QueueSummary[];
  }

  /** Polls `check` until it returns a value other than undefined (each takes well under a second on a quiet machine). */
  async function until<T>(what: string, check: () => T | undefined | Promise<T | undefined>, ms = 30_000): Promise<T> {
    const deadline = Date.now() + ms;
    for (;;) {
      const v = await check();
      if (v !== undefined) return v;
      if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  const sinkCopies = (token: string) => sink.messages.filter((m) => m.data.toString('latin1').includes(token)).length;

  function maildirCopies(dataDir: string, login: string, token: string): number {
    assert.equal(login, 'john.smith');
    const base = withStore(dataDir, (store) => store.folderPath(JOHN));
    let n = 0;
    for (const sub of ['new', 'cur']) {
      const dir = join(base, sub);
      if (!existsSync(dir)) continue;
      for (const f of readdirSync(dir)) if (readFileSync(join(dir, f), 'latin1').includes(token)) n++;
    }
    return n;
  }

  /**
   * Every queued message is whole: the .eml is as long as the envelope says (the message plus the spoolPrefix that
   * single-recipient mail carries for local delivery's link), and nothing is left in tmp/.
   */
  function assertQueueWhole(dataDir: string, ids: { id: string; size: number }[], opts: { tmpEmpty: boolean }): void {
    const dir = join(dataDir, 'queue');
    for (const e of ids) {
      const { spoolPrefix } = JSON.parse(readFileSync(join(dir, `${e.id}.json`), 'utf8')) as { spoolPrefix?: string };
      const expected = e.size + Buffer.byteLength(spoolPrefix ?? '', 'utf8');
      assert.equal(statSync(join(dir, `${e.id}.eml`)).size, expected, `${e.id}: .eml size differs from the envelope's`);
      if (spoolPrefix) assert.ok(readFileSync(join(dir, `${e.id}.eml`), 'utf8').startsWith(spoolPrefix), `${e.id}: .eml does not start with its spoolPrefix`);
      assert.ok(readFileSync(join(dir, `${e.id}.eml`), 'latin1').endsWith('\r\n'), `${e.id}: .eml is cut short`);
    }
    if (opts.tmpEmpty) assert.deepEqual(readdirSync(join(dir, 'tmp')), [], 'tmp/ after recovery');
  }

  it('remote recipient: killed right after 250, still queued, delivered once to the MX after the restart', PER_TEST, async (t: TestContext) => {
    const { config, dataDir, start } = await setup(t);
    const rcpt = `friend-${randomUUID().slice(0, 8)}@${REMOTE}`;
    const token = randomUUID();
    const t0 = Date.now();
    const first = await start();
    t.diagnostic(`server process ready in ${first.startMs} ms`);
    let killed: Promise<unknown> | undefined;
    const id = await sendRaw(first.ports.smtp, OUTSIDE, rcpt, token, () => (killed = first.kill('SIGKILL')));
    assert.deepEqual(await killed, { code: null, signal: 'SIGKILL' });
    const triedBefore = sink.rcpts.filter((r) => r.address === rcpt).length;
    t.diagnostic(`attempts the MX saw (451) before the kill: ${triedBefore}`);

    const queued = await queueList(config);
    assert.deepEqual(
      queued.map((e) => [e.id, e.pending.map((p) => p.address)]),
      [[id, [rcpt]]],
      'the acknowledged message is in the queue after the crash',
    );
    assertQueueWhole(dataDir, queued, { tmpEmpty: false });
    assert.equal(sinkCopies(token), 0);

    accepting.add(rcpt);
    const second = await start();
    await until('the MX to receive the message', () => (sinkCopies(token) > 0 ? true : undefined));
    await until('the queue to be empty', async () => ((await new Spool(dataDir).list()).length === 0 ? true : undefined));
    assert.equal((await second.stop()).code, 0, 'clean shutdown on SIGTERM');
    const copies = sinkCopies(token);
    t.diagnostic(`copies at the MX: ${copies} (at-least-once; the MX refused every attempt before the crash)`);
    assert.equal(copies, 1, 'delivered exactly once: nothing was accepted before the crash');
    const got = sink.messages.find((m) => m.data.toString('latin1').includes(token))!;
    assert.deepEqual([got.from, got.to], [OUTSIDE, [rcpt]]);
    assert.match(got.data.toString('latin1'), new RegExp(`by mx\\.example\\.com \\(postern\\) with ESMTP id ${id}`));
    const log = second.logs().find((l) => l.msg === 'queue started');
    assert.equal(log?.messages, 1, 'the restarted server found the message on disk');
    t.diagnostic(`total ${Date.now() - t0} ms`);
  });

  it('local recipient whose Maildir is blocked: killed after 250, still queued, in the Maildir exactly once after the restart', PER_TEST, async (t: TestContext) => {
    const { config, dataDir, start } = await setup(t);
    const token = randomUUID();
    // A file where john.smith's mailbox directory should be: delivery fails (temporarily) until it is removed.
    const userDir = join(withStore(dataDir, (store) => store.maildirPath(JOHN)), '..');
    mkdirSync(join(userDir, '..'), { recursive: true });
    writeFileSync(userDir, 'not a directory\n');
    const first = await start();
    let killed: Promise<unknown> | undefined;
    const id = await sendRaw(first.ports.smtp, OUTSIDE, 'john@example.com', token, () => (killed = first.kill('SIGKILL')));
    await killed;
    const queued = await queueList(config);
    assert.deepEqual(queued.map((e) => e.id), [id]);
    assertQueueWhole(dataDir, queued, { tmpEmpty: false });

    rmSync(userDir);
    const second = await start();
    await until('the message in the Maildir', () => (maildirCopies(dataDir, 'john.smith', token) > 0 ? true : undefined));
    await until('the queue to be empty', async () => ((await new Spool(dataDir).list()).length === 0 ? true : undefined));
    await second.stop();
    assert.equal(maildirCopies(dataDir, 'john.smith', token), 1);
    t.diagnostic(`queue attempts before the crash: ${queued[0].attempts}`);
  });

  it('local recipient, killed the moment 250 arrives (delivery may or may not have run): at least one copy after the restart', PER_TEST, async (t: TestContext) => {
    const { dataDir, start } = await setup(t);
    const outcomes: string[] = [];
    // A few rounds: the kill lands at different points of the local delivery; every round must end with a copy.
    for (let round = 0; round < 2; round++) {
      const token = randomUUID();
      const server = await start();
      let killed: Promise<unknown> | undefined;
      const id = await sendRaw(server.ports.smtp, OUTSIDE, 'john@example.com', token, () => (killed = server.kill('SIGKILL')));
      await killed;
      const inQueue = await new Spool(dataDir).has(id);
      const beforeRestart = maildirCopies(dataDir, 'john.smith', token);
      assert.ok(inQueue || beforeRestart > 0, `round ${round}: the acknowledged message ${id} is neither queued nor delivered`);
      const again = await start();
      await until('the message in the Maildir', () => (maildirCopies(dataDir, 'john.smith', token) > 0 ? true : undefined));
      await until('the queue to be empty', async () => ((await new Spool(dataDir).list()).length === 0 ? true : undefined));
      await again.stop();
      const copies = maildirCopies(dataDir, 'john.smith', token);
      assert.ok(copies >= 1);
      outcomes.push(`round ${round}: at the kill ${inQueue ? 'queued' : 'not queued'}, ${beforeRestart} in the Maildir; after the restart ${copies} copies`);
    }
    for (const o of outcomes) t.diagnostic(o);
  });

  it('killed in the middle of DATA: nothing half-written is queued, nothing is delivered, a complete message is kept', PER_TEST, async (t: TestContext) => {
    const { config, dataDir, start } = await setup(t);
    const held = `held-${randomUUID().slice(0, 8)}@${REMOTE}`; // never accepted: stays queued
    const first = await start();
    const heldId = await sendRaw(first.ports.smtp, OUTSIDE, held, randomUUID());

    const token = randomUUID();
    const smtp = await RawSmtp.open(first.ports.smtp);
    await smtp.startData(OUTSIDE, 'john@example.com');
    // Headers and ~200 KB of body, but no end of DATA.
    const partial = message(token, 'john@example.com', 3000);
    await new Promise<void>((resolve) => smtp.socket.write(partial, () => resolve()));
    // The bytes are in the server's socket buffer or already read by it; either way the server has not answered.
    await new Promise((r) => setTimeout(r, 200));
    await first.kill('SIGKILL');
    smtp.destroy();
    const attemptsAtKill = sink.rcpts.filter((r) => r.address === held).length;

    const afterKill = await queueList(config);
    assert.deepEqual(afterKill.map((e) => e.id), [heldId], 'only the complete message is queued');
    assertQueueWhole(dataDir, afterKill, { tmpEmpty: false });
    const tmpAfterKill = readdirSync(join(dataDir, 'queue', 'tmp'));

    const second = await start();
    // Two delivery attempts of the held message after the restart: the scheduler has scanned the recovered queue
    // at least twice, so anything else it found there would have been delivered by now (whatever the machine's speed).
    await until('two delivery attempts of the held message after the restart', () =>
      sink.rcpts.filter((r) => r.address === held).length >= attemptsAtKill + 2 ? true : undefined,
    );
    const afterRestart = await queueList(config);
    assert.deepEqual(afterRestart.map((e) => e.id), [heldId], 'still only the complete message');
    assertQueueWhole(dataDir, afterRestart, { tmpEmpty: true });
    assert.equal(maildirCopies(dataDir, 'john.smith', token), 0, 'the half-sent message was delivered');
    assert.equal((await second.stop()).code, 0);
    t.diagnostic(`tmp/ right after the kill: ${JSON.stringify(tmpAfterKill)}`);
  });

  it(
    'a second `postern serve` on the same dataDir does not deliver the queue a second time',
    PER_TEST,
    // The scheduler holds an exclusive lock on queue/server.lock: a second instance refuses to start instead of running a second
    // scheduler over the same spool (which delivered every message twice).
    async (t: TestContext) => {
      const { config, start } = await setup(t);
      const rcpts = Array.from({ length: 5 }, (_, i) => `twice-${i}-${randomUUID().slice(0, 8)}@${REMOTE}`);
      const first = await start();
      for (const rcpt of rcpts) await sendRaw(first.ports.smtp, OUTSIDE, rcpt, randomUUID());
      // The second instance may refuse to start (the fix); if it starts, it must not deliver what the first owns.
      const second = await start().catch((err: Error) => err);
      t.diagnostic(second instanceof Error ? `second server refused: ${second.message.split('\n')[0]}` : `second server started (pid ${second.pid})`);
      assert.ok(second instanceof Error, 'a second serve on the same dataDir must refuse to start');
      for (const rcpt of rcpts) accepting.add(rcpt);
      await until('every message at the MX', () => (rcpts.every((r) => sink.messages.some((m) => m.to.includes(r))) ? true : undefined));
      // Once the queue is empty nothing is left that could be delivered a second time (the second server refused).
      await until('the queue to be empty', async () => ((await queueList(config)).length === 0 ? true : undefined));
      await first.stop();
      const copies = rcpts.map((r) => sink.messages.filter((m) => m.to.includes(r)).length);
      t.diagnostic(`copies per message: ${JSON.stringify(copies)}`);
      assert.deepEqual(copies, rcpts.map(() => 1));
    },
  );

  it('many clients, killed at an arbitrary moment: every message that got 250 is in the queue, whole', PER_TEST, async (t: TestContext) => {
    const { config, dataDir, start } = await setup(t);
    const server = await start();
    const acked: string[] = [];
    let stopping = false;
    const client = async (n: number) => {
      const smtp = await RawSmtp.open(server.ports.smtp);
      try {
        await smtp.cmd('EHLO client.outside.example', 250);
        for (let i = 0; !stopping; i++) {
          const rcpt = `bulk-${n}-${i}@${REMOTE}`;
          if ((await smtp.cmd(`MAIL FROM:<${OUTSIDE}>`)).code !== 250) return;
          if ((await smtp.cmd(`RCPT TO:<${rcpt}>`)).code !== 250) return;
          if ((await smtp.cmd('DATA')).code !== 354) return;
          smtp.socket.write(message(randomUUID(), rcpt, 20) + '.\r\n');
          const r = await smtp.read();
          if (r.code !== 250) return;
          acked.push(/queued as (\S+)/.exec(r.text)![1]);
        }
      } finally {
        smtp.destroy();
      }
    };
    const clients = Array.from({ length: 8 }, (_, n) => client(n).catch(() => undefined));
    // Kill once enough messages are flowing: the point inside a transaction where it lands is arbitrary.
    await until('40 acknowledged messages', () => (acked.length >= 40 ? true : undefined));
    await server.kill('SIGKILL');
    stopping = true;
    await Promise.all(clients);
    const ackedAtKill = [...acked];

    const queued = await queueList(config);
    const ids = new Set(queued.map((e) => e.id));
    const lost = ackedAtKill.filter((id) => !ids.has(id));
    assert.deepEqual(lost, [], 'acknowledged messages missing from the queue after the crash');
    assertQueueWhole(dataDir, queued, { tmpEmpty: false });
    const tmpAfterKill = readdirSync(join(dataDir, 'queue', 'tmp')).length;

    const again = await start();
    const recovered = again.logs().find((l) => l.msg === 'queue started');
    await again.stop();
    const afterRestart = await new Spool(dataDir).list();
    assert.ok(ackedAtKill.every((id) => afterRestart.some((e) => e.id === id)));
    assertQueueWhole(dataDir, afterRestart, { tmpEmpty: true });
    t.diagnostic(
      `acknowledged ${ackedAtKill.length}, queued ${queued.length} (committed but not yet acknowledged: ${queued.length - ackedAtKill.length}), ` +
        `tmp files left by the crash ${tmpAfterKill}, restart: ${JSON.stringify({ messages: recovered?.messages, removedOrphans: recovered?.removedOrphans })}`,
    );
  });

  it('many clients to a local mailbox, killed at an arbitrary moment: every acknowledged message ends in the Maildir once linked, whole', PER_TEST, async (t: TestContext) => {
    // Single-recipient local mail is delivered by hard-linking the spool file into the Maildir (src/store/maildir.ts
    // deliverByLink): the kill may land between the link and the queue's removal, or before the link.
    const { dataDir, start } = await setup(t);
    const server = await start();
    const acked: string[] = [];
    let stopping = false;
    const client = async () => {
      const smtp = await RawSmtp.open(server.ports.smtp);
      try {
        await smtp.cmd('EHLO client.outside.example', 250);
        while (!stopping) {
          const token = randomUUID();
          if ((await smtp.cmd(`MAIL FROM:<${OUTSIDE}>`)).code !== 250) return;
          if ((await smtp.cmd('RCPT TO:<john@example.com>')).code !== 250) return;
          if ((await smtp.cmd('DATA')).code !== 354) return;
          smtp.socket.write(message(token, 'john@example.com', 20) + '.\r\n');
          if ((await smtp.read()).code !== 250) return;
          acked.push(token);
        }
      } finally {
        smtp.destroy();
      }
    };
    const clients = Array.from({ length: 8 }, () => client().catch(() => undefined));
    await until('40 acknowledged messages', () => (acked.length >= 40 ? true : undefined));
    await server.kill('SIGKILL');
    stopping = true;
    await Promise.all(clients);
    const ackedAtKill = [...acked];

    const again = await start();
    await until('the queue to be empty', async () => ((await new Spool(dataDir).list()).length === 0 ? true : undefined));
    await again.stop();
    const newDir = join(withStore(dataDir, (store) => store.folderPath(JOHN)), 'new');
    const files = readdirSync(newDir).map((name) => ({ name, text: readFileSync(join(newDir, name), 'latin1') }));
    for (const f of files) {
      // Whole: as long as its name says, one Return-Path and one Delivered-To on top (the spool's prefix, not twice).
      assert.equal(Buffer.byteLength(f.text, 'latin1'), Number(/,S=(\d+)/.exec(f.name)![1]), `${f.name}: size differs from its name`);
      assert.ok(f.text.startsWith(`Return-Path: <${OUTSIDE}>\r\nDelivered-To: john@example.com\r\nReceived: `), `${f.name}: ${f.text.slice(0, 120)}`);
      assert.equal(f.text.match(/^Return-Path:/gm)?.length, 1, `${f.name}: Return-Path twice`);
      assert.ok(f.text.endsWith('\r\n'), `${f.name}: cut short`);
    }
    const missing = ackedAtKill.filter((token) => !files.some((f) => f.text.includes(token)));
    assert.deepEqual(missing, [], 'acknowledged messages missing from the Maildir after the restart');
    const twice = ackedAtKill.filter((token) => files.filter((f) => f.text.includes(token)).length > 1).length;
    t.diagnostic(`acknowledged ${ackedAtKill.length}, files in new/ ${files.length}, delivered again after the restart (at-least-once) ${twice}`);
  });
});
