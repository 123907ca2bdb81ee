/**
 * IMAP benchmark (issue 5, "Done means"): postern's IMAP server on the Maildir store side by side with Dovecot from
 * Debian (test/bench/dovecot.ts) on the same Maildir data, each server on its own copy of it (made with `cp -a`
 * before either server touched it, so that neither finds the other's index files or renamed flags):
 *
 *  1. SELECT of a 100,000-message folder: first SELECT (index built from the bare Maildir), second SELECT in the
 *     same process (index warm), and SELECT after a server restart (index on disk, process cold).
 *  2. A workload of many clients (login, select, then rounds of fetch 1:20 ENVELOPE FLAGS, search subject,
 *     store +flags, append, idle + done) on 1,000-message INBOXes: ops/s and p50/p99 per operation.
 *  3. Memory of idle IDLE connections: postern's RSS with 10,000 of them, Dovecot's summed RSS/PSS with fewer
 *     (it forks one `imap` process per connection), compared per connection.
 *
 * postern runs in a child process (this same file, started with POSTERN_BENCH_IMAP_CHILD set) so that its RSS is
 * its own and the clients do not share its event loop. Both servers are reached over plain TCP on 127.0.0.1 with
 * LOGIN (postern with mailbox.allowUnencrypted on, Dovecot with ssl = no). Nothing here asserts; it prints.
 *
 * Sizes can be lowered for a quick run: POSTERN_BENCH_IMAP_BIG, _INBOX, _CLIENTS, _ROUNDS, _IDLE, _IDLE_DOVECOT.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchImapIdleTls } from './imap-idle.ts';
import { benchImapLoad } from './imap-load.ts';
import { memoryOf, memoryOfAll, startDovecot, type Dovecot } from './dovecot.ts';
import { envNumber, percentile, table, us } from './lib.ts';

const HERE = fileURLToPath(import.meta.url);
const PASSWORD = 'Corp!Passw0rd';
// Ordinary corp.ldif users, all with PASSWORD (fixtures/ad/README.md); lower-case logins = their store directories.
const USERS = ['john.smith', 'anna.bianchi', 'mario.rossi', 'laura.verdi', 'paolo.neri', 'it.tech', 'giulia.gallo'];
const BIG_OWNER = 'john.smith';
const BIG_FOLDER = 'Big';

const num = envNumber('IMAP');
const BIG = num('BIG', 100_000);
const INBOX = num('INBOX', 1_000);
const CLIENTS = num('CLIENTS', 50);
const ROUNDS = num('ROUNDS', 20);
const IDLE = num('IDLE', 10_000);
const IDLE_DOVECOT = num('IDLE_DOVECOT', 1_000);

// ---------------------------------------------------------------------------------------------------------------
// Data

function messageText(i: number, user: string): string {
  return [
    `From: Sender ${i % 50} <sender${i % 50}@example.org>`,
    `To: ${user} <${user}@example.com>`,
    `Subject: Report ${i} about topic ${i % 97}`,
    `Date: ${new Date(Date.UTC(2026, 0, 1) + i * 60_000).toUTCString().replace('GMT', '+0000')}`,
    `Message-ID: <bench-${i}@example.org>`,
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=us-ascii',
    '',
    `Body of message ${i}.`,
    'Nothing to see here, just a few lines of text',
    'to make the message look like mail.',
    '',
  ].join('\r\n');
}

/** Writes `count` messages straight into `<maildir>/cur` with Maildir names carrying ,S=<size> and :2,<flags>. */
function fillMaildir(maildir: string, count: number, user: string): void {
  for (const d of ['cur', 'new', 'tmp']) mkdirSync(join(maildir, d), { recursive: true });
  const t0 = 1_767_225_600; // 2026-01-01
  for (let i = 1; i <= count; i++) {
    const body = Buffer.from(messageText(i, user));
    const flags = i % 3 === 0 ? '' : i % 3 === 1 ? 'S' : 'FS';
    writeFileSync(join(maildir, 'cur', `${t0 + i}.M${i}P1.bench.example.com,S=${body.length}:2,${flags}`), body);
  }
}

function buildData(root: string): void {
  for (const u of USERS) fillMaildir(join(root, 'users', u, 'Maildir'), INBOX, u);
  const big = join(root, 'users', BIG_OWNER, 'Maildir', `.${BIG_FOLDER}`);
  fillMaildir(big, BIG, BIG_OWNER);
  writeFileSync(join(big, 'maildirfolder'), '');
}

// ---------------------------------------------------------------------------------------------------------------
// A raw IMAP client: just enough for the benchmark, cheap enough to hold 10,000 of them.

class RawImap {
  private buf = '';
  private n = 0;
  private check: (() => void) | null = null;
  private closed = false;

  private constructor(private readonly socket: Socket) {
    socket.setNoDelay(true);
    socket.on('data', (d: Buffer) => {
      this.buf += d.toString('latin1');
      this.check?.();
    });
    socket.on('close', () => {
      this.closed = true;
      this.check?.();
    });
    socket.on('error', () => undefined);
  }

  static async connect(port: number): Promise<RawImap> {
    const socket = connect(port, '127.0.0.1');
    await new Promise<void>((res, rej) => socket.once('connect', res).once('error', rej));
    const c = new RawImap(socket);
    await c.wait((b) => (b.startsWith('* OK') && b.includes('\r\n') ? b.indexOf('\r\n') + 2 : -1), 30_000);
    return c;
  }

  /** Resolves with everything up to the end index `find` returns (>= 0), consuming it. */
  private wait(find: (buf: string) => number, timeoutMs: number): Promise<string> {
    return new Promise((res, rej) => {
      const timer = setTimeout(() => {
        this.check = null;
        rej(new Error(`imap: timeout; got ${JSON.stringify(this.buf.slice(-300))}`));
      }, timeoutMs);
      this.check = () => {
        const end = find(this.buf);
        if (end >= 0) {
          this.check = null;
          clearTimeout(timer);
          const out = this.buf.slice(0, end);
          this.buf = this.buf.slice(end);
          res(out);
        } else if (this.closed) {
          this.check = null;
          clearTimeout(timer);
          rej(new Error(`imap: connection closed; got ${JSON.stringify(this.buf.slice(-300))}`));
        }
      };
      this.check();
    });
  }

  private static tagged(tag: string): (buf: string) => number {
    const needle = `${tag} `;
    return (buf) => {
      let i = buf.startsWith(needle) ? 0 : buf.indexOf(`\n${needle}`);
      if (i < 0) return -1;
      if (i > 0) i += 1;
      const eol = buf.indexOf('\r\n', i);
      return eol < 0 ? -1 : eol + 2;
    };
  }

  private static continuation(buf: string): number {
    const i = buf.startsWith('+') ? 0 : buf.indexOf('\n+');
    if (i < 0) return -1;
    const eol = buf.indexOf('\r\n', i + 1);
    return eol < 0 ? -1 : eol + 2;
  }

  private async tagged(tag: string, timeoutMs: number): Promise<string> {
    const out = await this.wait(RawImap.tagged(tag), timeoutMs);
    const last = out.slice(out.lastIndexOf(`${tag} `));
    if (!last.startsWith(`${tag} OK`)) throw new Error(`imap: ${last.trim()}`);
    return out;
  }

  async command(text: string, timeoutMs = 60_000): Promise<string> {
    const tag = `a${++this.n}`;
    this.socket.write(`${tag} ${text}\r\n`);
    return this.tagged(tag, timeoutMs);
  }

  async append(folder: string, flags: string, message: string): Promise<string> {
    const tag = `a${++this.n}`;
    this.socket.write(`${tag} APPEND ${folder} (${flags}) {${Buffer.byteLength(message)}}\r\n`);
    await this.wait(RawImap.continuation, 60_000);
    this.socket.write(`${message}\r\n`);
    return this.tagged(tag, 60_000);
  }

  /** Sends IDLE and waits for the continuation; the connection stays idling until done(). */
  async idle(): Promise<string> {
    const tag = `a${++this.n}`;
    this.socket.write(`${tag} IDLE\r\n`);
    await this.wait(RawImap.continuation, 60_000);
    return tag;
  }

  async done(tag: string): Promise<string> {
    this.socket.write('DONE\r\n');
    return this.tagged(tag, 60_000);
  }

  destroy(): void {
    this.socket.destroy();
  }

  async logout(): Promise<void> {
    try {
      await this.command('LOGOUT', 5_000);
    } catch {
      // some servers close before we read the tagged OK
    }
    this.socket.destroy();
  }
}

async function login(port: number, user: string): Promise<RawImap> {
  const c = await RawImap.connect(port);
  await c.command(`LOGIN ${user} "${PASSWORD}"`);
  return c;
}

/** Runs `fn(i)` for i < n with at most `width` at once. */
async function pool(n: number, width: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(width, n) }, async () => {
      while (next < n) await fn(next++);
    }),
  );
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------------------------
// The servers

interface Server {
  name: string;
  port: number;
  pid: number;
  /** Memory of the whole server (all its processes), KiB. */
  memory(): { rss: number; pss: number };
  stop(): Promise<void>;
}

/**
 * POSTERN_BENCH_IMAP_PROF=DIR: the postern child runs under `node --cpu-prof`. Node's own file names (pid and thread
 * id in them): tsx's loader runs in a worker thread that writes a profile too, and one --cpu-prof-name for both
 * threads left only the loader's.
 */
const PROF = process.env.POSTERN_BENCH_IMAP_PROF;

async function startPostern(root: string, mailRoot: string): Promise<Server> {
  const prof = PROF ? ['--cpu-prof', `--cpu-prof-dir=${PROF}`] : [];
  const child: ChildProcess = spawn(process.execPath, [...prof, '--import', 'tsx', HERE], {
    cwd: root,
    env: { ...process.env, POSTERN_BENCH_IMAP_CHILD: mailRoot },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const port = await new Promise<number>((res, rej) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /PORT (\d+)/.exec(out);
      if (m) res(Number(m[1]));
    });
    child.once('exit', (code) => rej(new Error(`postern child exited (${code}) before listening`)));
  });
  return {
    name: 'postern',
    port,
    pid: child.pid!,
    memory: () => memoryOf(child.pid!),
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(t);
    },
  };
}

async function startDovecotServer(mailRoot: string): Promise<Server & { dovecot: Dovecot }> {
  const dovecot = await startDovecot({ mailRoot, users: USERS, password: PASSWORD, maxConnections: Math.max(IDLE_DOVECOT, CLIENTS) + 50 });
  return {
    name: 'dovecot',
    port: dovecot.port,
    pid: dovecot.pid,
    dovecot,
    memory: () => memoryOfAll(dovecot.allPids()),
    stop: () => dovecot.destroy(),
  };
}

/** The postern process of the benchmark (this file run with POSTERN_BENCH_IMAP_CHILD=<mail root>). */
async function serveChild(mailRoot: string): Promise<void> {
  const root = resolve(dirname(HERE), '../..');
  const { Authenticator } = await import('../../src/auth/authenticator.ts');
  const { authSchema } = await import('../../src/config/schema.ts');
  const { LdifDirectory } = await import('../../src/directory/ldif/ldif-directory.ts');
  const { startImap } = await import('../../src/imap/server.ts');
  const { silentLogger } = await import('../../src/lib/logger.ts');
  const { MaildirStore } = await import('../../src/store/maildir.ts');
  const { MaildirMailbox } = await import('../../src/store/maildir-mailbox.ts');
  const auth = new Authenticator({
    directory: LdifDirectory.fromFile(join(root, 'fixtures/ad/corp.ldif'), { userPrincipalNameIsAddress: true }),
    config: authSchema.parse({ failureDelayMs: 0 }),
    masterUserEnabled: () => false,
    log: silentLogger,
  });
  const store = new MaildirStore({ root: mailRoot, hostname: 'bench.example.com', log: silentLogger });
  const mailbox = new MaildirMailbox({ store, quotaBytes: () => 0, log: silentLogger });
  const server = await startImap({
    port: 0,
    host: '127.0.0.1',
    secure: false,
    auth,
    mailbox,
    settings: { get: (key) => (key === 'mailbox.allowUnencrypted' ? true : key === 'mailbox.imap' ? true : false) },
    hostname: 'bench.example.com',
    log: silentLogger,
    maxPerAddress: 1_000_000,
    maxPerUser: 1_000_000,
  });
  process.on('SIGTERM', () => {
    void server.close().finally(() => {
      mailbox.close();
      process.exit(0);
    });
  });
  process.stdout.write(`PORT ${server.port}\n`);
}

// ---------------------------------------------------------------------------------------------------------------
// Measurements

async function timeSelect(port: number): Promise<number[]> {
  const c = await login(port, BIG_OWNER);
  const times: number[] = [];
  for (let i = 0; i < 2; i++) {
    const t0 = process.hrtime.bigint();
    const r = await c.command(`SELECT ${BIG_FOLDER}`, 600_000);
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
    const exists = Number(/^\* (\d+) EXISTS/m.exec(r)?.[1]);
    if (exists !== BIG) throw new Error(`SELECT ${BIG_FOLDER}: ${exists} EXISTS, expected ${BIG}`);
    await c.command('CLOSE');
  }
  await c.logout();
  return times;
}

/**
 * SEARCH on header criteria in the big folder (issue 11): each twice in one session, the first time after the
 * restart's SELECT (postern reads files whose header fields its index does not hold yet, messages that did not come
 * through APPEND; Dovecot fills its dovecot.index.cache), the second time from what the first left (postern's
 * folder index, Dovecot's cache file).
 */
const BIG_SEARCHES = ['FROM "sender7@"', 'SUBJECT "topic 42"', 'HEADER Message-ID "<bench-4242@"'];

async function timeSearch(port: number): Promise<{ criterion: string; times: number[]; found: number }[]> {
  const c = await login(port, BIG_OWNER);
  await c.command(`SELECT ${BIG_FOLDER}`, 600_000);
  const out: { criterion: string; times: number[]; found: number }[] = [];
  for (const criterion of BIG_SEARCHES) {
    const times: number[] = [];
    let found = 0;
    for (let i = 0; i < 2; i++) {
      const t0 = process.hrtime.bigint();
      const r = await c.command(`SEARCH ${criterion}`, 600_000);
      times.push(Number(process.hrtime.bigint() - t0) / 1e6);
      found = (/^\* SEARCH([\d ]*)\r$/m.exec(r)?.[1] ?? '').trim().split(' ').filter(Boolean).length;
    }
    out.push({ criterion, times, found });
  }
  await c.logout();
  return out;
}

type Op = 'login' | 'select' | 'fetch' | 'search' | 'store' | 'append' | 'idle';
const OPS: Op[] = ['login', 'select', 'fetch', 'search', 'store', 'append', 'idle'];

interface WorkloadResult {
  seconds: number;
  ops: number;
  lat: Record<Op, number[]>;
}

async function workload(port: number): Promise<WorkloadResult> {
  const lat = Object.fromEntries(OPS.map((o) => [o, [] as number[]])) as Record<Op, number[]>;
  const timed = async <T>(op: Op, fn: () => Promise<T>): Promise<T> => {
    const t0 = process.hrtime.bigint();
    const r = await fn();
    lat[op].push(Number(process.hrtime.bigint() - t0) / 1000);
    return r;
  };
  const t0 = Date.now();
  await Promise.all(
    Array.from({ length: CLIENTS }, async (_, k) => {
      const user = USERS[k % USERS.length]!;
      const c = await timed('login', async () => {
        const c = await RawImap.connect(port);
        await c.command(`LOGIN ${user} "${PASSWORD}"`);
        return c;
      });
      await timed('select', () => c.command('SELECT INBOX'));
      for (let r = 0; r < ROUNDS; r++) {
        const i = k * ROUNDS + r;
        await timed('fetch', () => c.command('FETCH 1:20 (ENVELOPE FLAGS)'));
        await timed('search', () => c.command(`SEARCH SUBJECT "topic ${i % 97}"`));
        await timed('store', () => c.command(`STORE ${1 + ((i * 37) % INBOX)} +FLAGS (\\Flagged)`));
        await timed('append', () => c.append('INBOX', '\\Seen', messageText(100_000 + i, user)));
        await timed('idle', async () => c.done(await c.idle()));
      }
      await c.logout();
    }),
  );
  const seconds = (Date.now() - t0) / 1000;
  return { seconds, ops: OPS.reduce((s, o) => s + lat[o].length, 0), lat };
}

interface IdleResult {
  n: number;
  before: { rss: number; pss: number };
  after: { rss: number; pss: number };
  seconds: number;
}

/** Opens n connections, each logged in with INBOX selected and in IDLE; measures the server's memory around it. */
async function idleMemory(server: Server, n: number): Promise<IdleResult> {
  // Warm-up: a few sessions through the same path, so that code and caches are loaded before the baseline.
  await pool(USERS.length, USERS.length, async (i) => {
    const c = await login(server.port, USERS[i]!);
    await c.command('SELECT INBOX');
    await c.done(await c.idle());
    await c.logout();
  });
  await sleep(1000);
  const before = server.memory();
  const clients: RawImap[] = [];
  const t0 = Date.now();
  await pool(n, 100, async (i) => {
    const c = await login(server.port, USERS[i % USERS.length]!);
    await c.command('SELECT INBOX');
    await c.idle();
    clients.push(c);
  });
  const seconds = (Date.now() - t0) / 1000;
  await sleep(2000);
  const after = server.memory();
  for (const c of clients) c.destroy();
  await sleep(500);
  return { n, before, after, seconds };
}

// ---------------------------------------------------------------------------------------------------------------

interface ServerResults {
  select: number[];
  selectRestart: number;
  search: Awaited<ReturnType<typeof timeSearch>>;
  work: WorkloadResult;
  idle: IdleResult;
}

/** The SELECT measures only: first and warm in one process, then first after a restart. */
async function runSelect(start: () => Promise<Server>): Promise<{ select: number[]; selectRestart: number }> {
  let s = await start();
  let select: number[];
  try {
    select = await timeSelect(s.port);
  } finally {
    await s.stop();
  }
  s = await start();
  try {
    return { select, selectRestart: (await timeSelect(s.port))[0]! };
  } finally {
    await s.stop();
  }
}

async function runServer(start: () => Promise<Server>, idleN: number, freshForIdle: boolean): Promise<ServerResults> {
  let s = await start();
  let select: number[];
  let selectRestart: number;
  try {
    select = await timeSelect(s.port);
  } finally {
    await s.stop();
  }
  s = await start();
  try {
    selectRestart = (await timeSelect(s.port))[0]!;
    const search = await timeSearch(s.port);
    const work = await workload(s.port);
    if (freshForIdle) {
      await s.stop();
      s = await start();
    }
    const idle = await idleMemory(s, idleN);
    return { select, selectRestart, search, work, idle };
  } finally {
    await s.stop();
  }
}

const mb = (kib: number) => `${(kib / 1024).toFixed(1)} MiB`;
const kb = (kib: number) => `${kib.toFixed(0)} KiB`;
const ms = (v: number) => `${v.toFixed(0)} ms`;

/**
 * `npm run bench -- imap`: imaptest's load (./imap-load.ts, issue 11), idle IDLE connections over TLS
 * (./imap-idle.ts, issue 11), then this file's measures (issue 5). POSTERN_BENCH_IMAP_PARTS=load,idle-tls,servers
 * (any of them) runs only those; `select` (not in the default) runs only the SELECT measures of `servers`.
 */
export async function benchImap(root: string): Promise<string> {
  const parts = (process.env.POSTERN_BENCH_IMAP_PARTS ?? 'load,idle-tls,servers').split(',');
  const out: string[] = [];
  if (parts.includes('load')) out.push(await benchImapLoad(root));
  if (parts.includes('idle-tls')) out.push(await benchImapIdleTls(root));
  if (parts.includes('servers')) out.push(await benchImapServers(root));
  else if (parts.includes('select')) out.push(await benchImapServers(root, true));
  return out.join('\n\n');
}

async function benchImapServers(root: string, selectOnly = false): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'postern-bench-imap-'));
  chmodSync(dir, 0o755);
  try {
    const t0 = Date.now();
    const master = join(dir, 'data');
    buildData(master);
    const postMail = join(dir, 'postern');
    const dovMail = join(dir, 'dovecot');
    execFileSync('cp', ['-a', master, postMail]);
    execFileSync('cp', ['-a', master, dovMail]);
    rmSync(master, { recursive: true, force: true });
    // Dovecot refuses to run mail processes as root: its copy belongs to the Debian `mail` user.
    execFileSync('chown', ['-R', 'mail:mail', dovMail]);
    const dataSeconds = (Date.now() - t0) / 1000;

    if (selectOnly) {
      const p = await runSelect(() => startPostern(root, postMail));
      const d = await runSelect(() => startDovecotServer(dovMail));
      return [
        `SELECT of a ${BIG.toLocaleString('en')}-message folder, postern vs Dovecot (wall time of the command; files in the page cache)`,
        table([
          ['SELECT', 'postern', 'dovecot', 'postern / dovecot'],
          ['first (no index yet)', ms(p.select[0]!), ms(d.select[0]!), (p.select[0]! / d.select[0]!).toFixed(2)],
          ['second, same process', ms(p.select[1]!), ms(d.select[1]!), (p.select[1]! / d.select[1]!).toFixed(2)],
          ['first after a restart', ms(p.selectRestart), ms(d.selectRestart), (p.selectRestart / d.selectRestart).toFixed(2)],
        ]),
      ].join('\n');
    }
    const p = await runServer(() => startPostern(root, postMail), IDLE, true);
    const d = await runServer(() => startDovecotServer(dovMail), IDLE_DOVECOT, false);

    const lines: string[] = [];
    lines.push(
      `IMAP: postern (MaildirMailbox, child process) vs Dovecot ${execFileSync('dovecot', ['--version']).toString().trim()} (Debian), ` +
        `127.0.0.1, plain LOGIN; each server on its own cp -a copy of the same Maildir data (built in ${dataSeconds.toFixed(1)} s)`,
    );
    lines.push('');
    lines.push(`SELECT of a ${BIG.toLocaleString('en')}-message folder (wall time of the command; files in the page cache)`);
    lines.push(
      table([
        ['SELECT', 'postern', 'dovecot', 'postern / dovecot'],
        ['first (no index yet)', ms(p.select[0]!), ms(d.select[0]!), (p.select[0]! / d.select[0]!).toFixed(2)],
        ['second, same process', ms(p.select[1]!), ms(d.select[1]!), (p.select[1]! / d.select[1]!).toFixed(2)],
        ['first after a restart', ms(p.selectRestart), ms(d.selectRestart), (p.selectRestart / d.selectRestart).toFixed(2)],
      ]),
    );
    lines.push('');
    lines.push(`SEARCH in the ${BIG.toLocaleString('en')}-message folder, after the restart's SELECT (first: postern's index holds no header fields yet for files it did not APPEND)`);
    const srows = [['SEARCH', 'found', 'postern 1st', 'dovecot 1st', 'ratio', 'postern 2nd', 'dovecot 2nd', 'ratio']];
    for (const [i, ps] of p.search.entries()) {
      const ds = d.search[i]!;
      const found = ps.found === ds.found ? String(ps.found) : `${ps.found} vs ${ds.found}`;
      srows.push([ps.criterion, found, ms(ps.times[0]!), ms(ds.times[0]!), (ps.times[0]! / ds.times[0]!).toFixed(2), ms(ps.times[1]!), ms(ds.times[1]!), (ps.times[1]! / ds.times[1]!).toFixed(2)]);
    }
    lines.push(table(srows));
    lines.push('');
    lines.push(
      `Workload: ${CLIENTS} clients at once over ${USERS.length} users' ${INBOX}-message INBOXes; each: login, select, then ${ROUNDS} rounds of ` +
        'FETCH 1:20 (ENVELOPE FLAGS), SEARCH SUBJECT, STORE +FLAGS, APPEND, IDLE+DONE',
    );
    const rows = [['op', 'n', 'postern p50', 'postern p99', 'dovecot p50', 'dovecot p99', 'p50 ratio', 'p99 ratio']];
    for (const op of OPS) {
      const a = [...p.work.lat[op]].sort((x, y) => x - y);
      const b = [...d.work.lat[op]].sort((x, y) => x - y);
      rows.push([
        op,
        String(a.length),
        us(percentile(a, 50)),
        us(percentile(a, 99)),
        us(percentile(b, 50)),
        us(percentile(b, 99)),
        (percentile(a, 50) / percentile(b, 50)).toFixed(2),
        (percentile(a, 99) / percentile(b, 99)).toFixed(2),
      ]);
    }
    const pRate = p.work.ops / p.work.seconds;
    const dRate = d.work.ops / d.work.seconds;
    rows.push(['total ops/s', String(p.work.ops), pRate.toFixed(0), `(${p.work.seconds.toFixed(1)} s)`, dRate.toFixed(0), `(${d.work.seconds.toFixed(1)} s)`, (pRate / dRate).toFixed(2), '(throughput)']);
    lines.push(table(rows));
    lines.push('');
    const perP = (p.idle.after.rss - p.idle.before.rss) / p.idle.n;
    const perDrss = (d.idle.after.rss - d.idle.before.rss) / d.idle.n;
    const perDpss = (d.idle.after.pss - d.idle.before.pss) / d.idle.n;
    lines.push('Memory of idle IDLE connections (logged in, INBOX selected, in IDLE); Dovecot summed over all its processes');
    lines.push(
      table([
        ['server', 'connections', 'opened in', 'before', 'after', 'per connection'],
        ['postern RSS', String(p.idle.n), `${p.idle.seconds.toFixed(1)} s`, mb(p.idle.before.rss), mb(p.idle.after.rss), kb(perP)],
        ['dovecot RSS (sum)', String(d.idle.n), `${d.idle.seconds.toFixed(1)} s`, mb(d.idle.before.rss), mb(d.idle.after.rss), kb(perDrss)],
        ['dovecot PSS (sum)', String(d.idle.n), '', mb(d.idle.before.pss), mb(d.idle.after.pss), kb(perDpss)],
      ]),
    );
    lines.push(
      `Per idle connection, postern / dovecot: ${(perP / perDrss).toFixed(3)} (vs summed RSS), ${(perP / perDpss).toFixed(3)} (vs PSS, shared pages counted once). ` +
        `Dovecot extrapolated to ${IDLE.toLocaleString('en')}: ${mb(perDpss * IDLE)} PSS; postern measured: ${mb(p.idle.after.rss - p.idle.before.rss)}.`,
    );
    lines.push('');
    lines.push(
      `Ratios (postern / Dovecot): SELECT ${BIG.toLocaleString('en')} first ${(p.select[0]! / d.select[0]!).toFixed(2)}, warm ${(p.select[1]! / d.select[1]!).toFixed(2)}, ` +
        `after restart ${(p.selectRestart / d.selectRestart).toFixed(2)}; SEARCH (2nd) ${p.search.map((ps, i) => (ps.times[1]! / d.search[i]!.times[1]!).toFixed(2)).join(' / ')}; workload throughput ${(pRate / dRate).toFixed(2)}; ` +
        `memory per idle connection ${(perP / perDpss).toFixed(2)} (PSS) / ${(perP / perDrss).toFixed(2)} (RSS).`,
    );
    return lines.join('\n');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.env.POSTERN_BENCH_IMAP_CHILD) await serveChild(process.env.POSTERN_BENCH_IMAP_CHILD);
