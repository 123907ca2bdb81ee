/**
 * Cluster benchmark (issue 16): what the shared engine costs, for SMTP and for IMAP, in three setups:
 *   embedded     one node on the embedded default (state sqlite)
 *   pg, 1 node   one node with state postgres (settings, queue rows, folder index, trace … in PostgreSQL)
 *   pg, 2 nodes  two nodes on one database and one shared store: node B's dataDir/mail and dataDir/queue are
 *                symlinks to node A's (the NFS/CephFS mount of a real cluster); each keeps its node-local rest
 *                (index-cache, settings cache). The load is split between them.
 * printed as rates and as ratios against the embedded default. On one 2-core machine the two nodes share the cores:
 * the point is the cost of PostgreSQL, not a speed-up.
 *
 * SMTP: smtp-source → `postern serve` → Maildir (accepted → in new/, as smtp.bench.ts measures it).
 * IMAP: imaptest (POSTERN_BENCH_IMAPTEST or /work/tools/imaptest; never a dependency) in its default profile, two
 * processes at once in every setup (users 1–9 and 11–19, half the clients each), pointed at node A and node B of
 * the two-node setup and both at the one node otherwise, so that each setup gets the same load: imaptest's
 * operations per second (its Totals line summed, divided by secs). Without imaptest the IMAP column says so.
 *
 * The PostgreSQL is the test harness's throw-away one (test/harness/postgres.ts), started for the bench.
 * POSTERN_BENCH_CLUSTER_ROOT runs another checkout's bin/postern.js (a before/after comparison; build it first:
 * bin/postern.js runs dist/ only while it is newer than src/).
 * Knobs: POSTERN_BENCH_CLUSTER_MESSAGES (2000), _SESSIONS (20), _SIZE (10240), _RUNS (2), _IMAP_SECS (30),
 * _IMAP_CLIENTS (10). POSTERN_BENCH_CLUSTER_PGSTATS=1 loads pg_stat_statements into the throw-away PostgreSQL and
 * prints, per setup and phase, the statements PostgreSQL ran per message / per imaptest operation (where the round
 * trips go). CPU seconds of the postern nodes and of the PostgreSQL server (postmaster, its backends, reaped or
 * live) are printed per message and per operation: on a loaded machine the rate is noisy, the CPU less so.
 * POSTERN_BENCH_CLUSTER_COMPARE=DIR adds, in the same run, "postgres, 1 node" (and "2 nodes") of another checkout
 * (DIR/bin/postern.js, built): before and after a change under the same load, each against the same embedded
 * default. POSTERN_BENCH_CLUSTER_SETUPS=embedded,pg1,pg2 (default all) runs a subset (the embedded one always runs:
 * it is the ratio's base). POSTERN_BENCH_CLUSTER_PROF=DIR runs the nodes under `node --cpu-prof` (a profile per
 * node and run in DIR; summarise with test/bench/cpuprofile.ts).
 * Nothing here asserts.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import pg from 'pg';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startPostgres, type Postgres } from '../harness/postgres.ts';
import { createTestDatabase } from '../helpers/pg-database.ts';
import { imaptestBinary, PASSWORD, writeLdif, writeMbox } from './imap-load.ts';
import { ownImapLoad } from './imap-own-load.ts';
import { cpuOf, envNumber, table } from './lib.ts';
import { freePort } from './postfix.ts';

const num = envNumber('CLUSTER');
const MESSAGES = num('MESSAGES', 2000);
const SESSIONS = num('SESSIONS', 20);
const SIZE = num('SIZE', 10240);
const RUNS = num('RUNS', 2);
const IMAP_SECS = num('IMAP_SECS', 30);
const IMAP_CLIENTS = num('IMAP_CLIENTS', 10);
const PGSTATS = process.env.POSTERN_BENCH_CLUSTER_PGSTATS === '1';
const COMPARE = process.env.POSTERN_BENCH_CLUSTER_COMPARE;
const SETUPS = process.env.POSTERN_BENCH_CLUSTER_SETUPS?.split(',') ?? ['embedded', 'pg1', 'pg2'];
const PROF = process.env.POSTERN_BENCH_CLUSTER_PROF;
/** imaptest's users: user1–user9 through one process, user11–user19 through the other; SMTP goes to user20. */
const USERS = 20;
const RECIPIENT = 'user20@example.com';

interface Node {
  pid: number;
  port: number;
  imapPort: number;
  dataDir: string;
  newDir: string;
  stop(): Promise<void>;
}

function countFiles(dir: string): number {
  try {
    return readdirSync(dir).length;
  } catch {
    return 0;
  }
}

async function startNode(root: string, work: string, state: Record<string, unknown>, shareWith?: Node): Promise<Node> {
  const dataDir = mkdtempSync(join(work, 'node-'));
  const port = await freePort();
  const imapPort = await freePort();
  const base = {
    hostname: 'postern-bench.example.com',
    dataDir,
    directory: { type: 'ldif', file: join(work, 'users.ldif') },
    auth: { failureDelayMs: 0, failureDelayMaxMs: 0 },
    listeners: {
      smtp: { port, host: '127.0.0.1', pregreet: { waitMs: 0 } },
      submission: false,
      smtps: false,
      imap: { port: imapPort, host: '127.0.0.1' },
      imaps: false,
      pop3: false,
      pop3s: false,
      admin: false,
      http: false,
      https: false,
      managesieve: false,
    },
    smtp: { maxClients: 1000 },
  };
  if (shareWith) {
    // The shared store: the second node's mail and queue are the first one's (the mount every node has).
    symlinkSync(join(shareWith.dataDir, 'mail'), join(dataDir, 'mail'));
    symlinkSync(join(shareWith.dataDir, 'queue'), join(dataDir, 'queue'));
  }
  // The settings are prepared in the node's settings.db with the embedded store; the first node on an empty
  // PostgreSQL brings them along, a later one takes the database's.
  const prep = join(dataDir, 'prep.yaml');
  writeFileSync(prep, JSON.stringify(base));
  const cli = (args: string[]) => {
    const r = spawnSync(process.execPath, [join(root, 'bin/postern.js'), '--config', prep, ...args], { cwd: root, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`postern ${args.join(' ')}: ${r.stderr}`);
  };
  cli(['domain', 'add', 'example.com']);
  cli(['settings', 'set', 'filter.antivirus', 'no', 'filter.spam', 'no', 'mailbox.allowUnencrypted', 'yes']);
  const newDir = join(dataDir, 'mail', 'users', 'user20', 'Maildir', 'new');
  if (!shareWith) for (const sub of ['cur', 'new', 'tmp']) mkdirSync(join(newDir, '..', sub), { recursive: true });
  const configFile = join(dataDir, 'postern.yaml');
  writeFileSync(configFile, JSON.stringify({ ...base, state }));
  const prof = PROF ? ['--cpu-prof', `--cpu-prof-dir=${PROF}`] : [];
  const child: ChildProcess = spawn(process.execPath, [...prof, join(root, 'bin/postern.js'), '--config', configFile, 'serve'], {
    cwd: root,
    env: { ...process.env, POSTERN_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const deadline = Date.now() + 180_000;
  while (!/mail domains: /.test(out)) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`postern did not start:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    pid: child.pid!,
    port,
    imapPort,
    dataDir,
    newDir,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise<void>((r) => child.once('exit', () => r()));
        try {
          process.kill(-child.pid!, 'SIGTERM');
        } catch {
          /* gone */
        }
        const t = setTimeout(() => {
          try {
            process.kill(-child.pid!, 'SIGKILL');
          } catch {
            /* gone */
          }
        }, 15_000);
        await exited;
        clearTimeout(t);
      }
    },
  };
}

/** The pids of the live children of every process (one pass over /proc). */
function childrenByParent(): Map<number, number[]> {
  const out = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      out.set(ppid, [...(out.get(ppid) ?? []), Number(name)]);
    } catch {
      /* gone */
    }
  }
  return out;
}

/** CPU seconds of a process tree: each process's own, plus what its reaped children used. */
function cpuOfTree(pid: number, kids = childrenByParent()): number {
  return cpuOf(pid, true) + (kids.get(pid) ?? []).reduce((s, c) => s + cpuOfTree(c, kids), 0);
}

/** The postmaster's pid (first line of postmaster.pid). */
function postmasterPid(p: Postgres): number {
  return Number(readFileSync(join(p.dir, 'data', 'postmaster.pid'), 'utf8').split('\n')[0]);
}

/** CPU seconds so far of the nodes and of the PostgreSQL server. */
function cpuNow(nodes: Node[], p: Postgres): { node: number; pg: number } {
  const kids = childrenByParent();
  return { node: nodes.reduce((s, n) => s + cpuOfTree(n.pid, kids), 0), pg: cpuOfTree(postmasterPid(p), kids) };
}

/** pg_stat_statements of database `url`: reset, or the top statements by calls divided by `per`. */
async function pgStats(url: string, per?: { n: number; unit: string; label: string }): Promise<void> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    if (!per) {
      await c.query('SELECT pg_stat_statements_reset()');
      return;
    }
    const r = await c.query<{ calls: string; ms: string; query: string }>(
      `SELECT calls, total_exec_time AS ms, query FROM pg_stat_statements
        WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) ORDER BY calls DESC LIMIT 25`,
    );
    const total = r.rows.reduce((s, x) => s + Number(x.calls), 0);
    console.error(`-- ${per.label}: ${(total / per.n).toFixed(2)} statements per ${per.unit} (top 25 by calls)`);
    for (const x of r.rows) {
      console.error(
        `   ${(Number(x.calls) / per.n).toFixed(3).padStart(8)} /${per.unit}  ${(Number(x.ms) / Number(x.calls)).toFixed(3).padStart(7)} ms  ${x.query.replace(/\s+/g, ' ').slice(0, 150)}`,
      );
    }
  } finally {
    await c.end();
  }
}

/** smtp-source against every node at once (sessions and messages split evenly); msg/s until all are in new/. */
async function load(nodes: Node[], messages: number, sessions: number): Promise<number> {
  // One new/ per store: the nodes of the shared store see one directory.
  const dirs = [...new Set(nodes.map((n) => realpathSync(n.newDir)))];
  const arrived = () => dirs.reduce((n, d) => n + countFiles(d), 0);
  const before = arrived();
  const t0 = performance.now();
  const srcs = nodes.map((node, i) => {
    const m = Math.floor(messages / nodes.length) + (i < messages % nodes.length ? 1 : 0);
    const s = Math.max(1, Math.floor(sessions / nodes.length));
    const args = ['-s', String(s), '-m', String(m), '-l', String(SIZE), '-M', 'client.example.net', '-f', 'sender@example.net', '-t', RECIPIENT, `127.0.0.1:${node.port}`];
    const src = spawn('smtp-source', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    src.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    return { src, err: () => err, done: new Promise<number | null>((r) => src.once('exit', (code) => r(code))) };
  });
  const limit = Date.now() + Math.max(180_000, messages * 200);
  for (;;) {
    const n = arrived() - before;
    if (n >= messages) break;
    if (Date.now() > limit) {
      for (const s of srcs) s.src.kill('SIGKILL');
      throw new Error(`only ${n} of ${messages} messages arrived; smtp-source said: ${srcs.map((s) => s.err().slice(-300)).join(' | ')}`);
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  const seconds = (performance.now() - t0) / 1000;
  for (const s of srcs) {
    const code = await s.done;
    if (code !== 0) throw new Error(`smtp-source exited ${code}: ${s.err().slice(-500)}`);
  }
  return messages / seconds;
}

/** imaptest's operations in its Totals line (names, percentages, then the counts). */
function imaptestOps(out: string): number | undefined {
  const lines = out.split('\n');
  const at = lines.findIndex((l) => l.startsWith('Totals:'));
  const countLine = at < 0 ? undefined : lines.slice(at + 2).find((l) => /^[\s\d]+$/.test(l) && l.trim() !== '');
  return countLine?.trim().split(/\s+/).map(Number).reduce((s, v) => s + v, 0);
}

/** Two imaptest processes at once (users 1–9 on node A, 11–19 on node B, or both on the one node): ops/s together. */
async function imapLoad(bin: string, nodes: Node[], mbox: string): Promise<{ rate: number; ops: number }> {
  const runs = ['user%d', 'user1%d'].map((user, i) => {
    const node = nodes[i % nodes.length]!;
    const args = ['host=127.0.0.1', `port=${node.imapPort}`, `user=${user}`, 'users=9', `pass=${PASSWORD}`, `mbox=${mbox}`, `clients=${Math.max(1, Math.floor(IMAP_CLIENTS / 2))}`, `secs=${IMAP_SECS}`, `seed=${i + 1}`];
    const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    return new Promise<number>((res, rej) =>
      child.once('exit', (code) => {
        const ops = imaptestOps(out);
        if (ops === undefined) rej(new Error(`imaptest (exit ${code}) printed no totals:\n${out.slice(-1500)}`));
        else res(ops);
      }),
    );
  });
  const ops = (await Promise.all(runs)).reduce((s, v) => s + v, 0);
  return { rate: ops / IMAP_SECS, ops };
}

/**
 * Without imaptest: the repo's own mix (imap-own-load.ts), IMAP_CLIENTS clients on users 1–9 and 11–19 split over
 * the nodes as imapLoad splits them.
 */
async function ownLoad(nodes: Node[]): Promise<{ rate: number; ops: number }> {
  const targets = Array.from({ length: IMAP_CLIENTS }, (_, i) => {
    const half = i % 2;
    return { port: nodes[half % nodes.length]!.imapPort, user: `user${half ? 11 + ((i >> 1) % 9) : 1 + ((i >> 1) % 9)}` };
  });
  const r = await ownImapLoad(targets, PASSWORD, IMAP_SECS);
  console.error(`   own IMAP load: ${r.ops} ops, ${r.errors} not OK; ${JSON.stringify(r.byOp)}`);
  return { rate: r.ops / IMAP_SECS, ops: r.ops };
}

/** One statement on database `url` (CREATE EXTENSION). */
async function admin(url: string, sql: string): Promise<void> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

export async function benchCluster(defaultRoot: string): Promise<string> {
  const root = process.env.POSTERN_BENCH_CLUSTER_ROOT ?? defaultRoot;
  if (!existsSync('/usr/sbin/smtp-source') && spawnSync('smtp-source', []).error) throw new Error('smtp-source (Debian postfix) is needed');
  const imaptest = imaptestBinary();
  const work = mkdtempSync(join(tmpdir(), 'postern-bench-cluster-'));
  writeLdif(join(work, 'users.ldif'), USERS);
  const mbox = join(work, 'bench.mbox');
  writeMbox(mbox);
  const pgServer: Postgres = await startPostgres(
    PGSTATS ? { settings: { shared_preload_libraries: 'pg_stat_statements', 'pg_stat_statements.track': 'all' } } : {},
  );
  const rows: string[][] = [['run', 'setup', 'SMTP msg/s', 'ratio', 'CPU ms/msg node+pg', 'IMAP ops/s', 'ratio', 'CPU ms/op node+pg']];
  const loadAvg = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  const loads: string[] = [];
  try {
    for (let run = 1; run <= RUNS; run++) {
      let dbUrl: string | undefined;
      const pgSetups = (r: string, tag: string): { label: string; start(): Promise<Node[]> }[] => [
        ...(SETUPS.includes('pg1')
          ? [
              {
                label: `postgres, 1 node${tag}`,
                start: async () => {
                  const db = await createTestDatabase({ baseUrl: pgServer.url, prefix: 'bench1' });
                  dbUrl = db.url;
                  if (PGSTATS) await admin(db.url, 'CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
                  return [await startNode(r, work, { type: 'postgres', url: db.url })];
                },
              },
            ]
          : []),
        ...(SETUPS.includes('pg2')
          ? [
              {
                label: `postgres, 2 nodes, shared store${tag}`,
                start: async () => {
                  const db = await createTestDatabase({ baseUrl: pgServer.url, prefix: 'bench2' });
                  dbUrl = db.url;
                  if (PGSTATS) await admin(db.url, 'CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
                  const a = await startNode(r, work, { type: 'postgres', url: db.url });
                  return [a, await startNode(r, work, { type: 'postgres', url: db.url }, a)];
                },
              },
            ]
          : []),
      ];
      const setups: { label: string; start(): Promise<Node[]> }[] = [
        { label: 'embedded (sqlite), 1 node', start: async () => [await startNode(root, work, { type: 'sqlite' })] },
        // Base and change alternate run by run, so that neither always comes right after the embedded one.
        ...(COMPARE && run % 2 === 0 ? pgSetups(COMPARE, ' (compare)') : []),
        ...pgSetups(root, ''),
        ...(COMPARE && run % 2 === 1 ? pgSetups(COMPARE, ' (compare)') : []),
      ];
      let smtpBase = 0;
      let imapBase = 0;
      for (const s of setups) {
        dbUrl = undefined;
        const nodes = await s.start();
        try {
          await load(nodes, 50 * nodes.length, Math.min(5, SESSIONS));
          if (PGSTATS && dbUrl) await pgStats(dbUrl);
          const c0 = cpuNow(nodes, pgServer);
          const rate = await load(nodes, MESSAGES, SESSIONS);
          const c1 = cpuNow(nodes, pgServer);
          loads.push(loadAvg());
          if (PGSTATS && dbUrl) {
            await pgStats(dbUrl, { n: MESSAGES, unit: 'msg', label: `${s.label}, SMTP` });
            await pgStats(dbUrl);
          }
          if (!smtpBase) smtpBase = rate;
          const imap = imaptest ? await imapLoad(imaptest, nodes, mbox) : await ownLoad(nodes);
          const c2 = cpuNow(nodes, pgServer);
          loads.push(loadAvg());
          if (PGSTATS && dbUrl) await pgStats(dbUrl, { n: imap.ops, unit: 'op', label: `${s.label}, IMAP` });
          if (!imapBase) imapBase = imap.rate;
          const ms = (a: number, b: number, n: number) => ((1000 * a) / n).toFixed(2) + '+' + ((1000 * b) / n).toFixed(2);
          rows.push([
            String(run),
            s.label,
            rate.toFixed(0),
            (rate / smtpBase).toFixed(2),
            ms(c1.node - c0.node, c1.pg - c0.pg, MESSAGES),
            imap.rate.toFixed(0),
            (imap.rate / imapBase).toFixed(2),
            ms(c2.node - c1.node, c2.pg - c1.pg, imap.ops),
          ]);
          console.error(rows.at(-1)!.join('  '));
        } finally {
          for (const n of nodes.reverse()) await n.stop();
        }
      }
    }
  } finally {
    await pgServer.destroy();
    rmSync(work, { recursive: true, force: true });
  }
  return [
    `cluster (${root}${COMPARE ? `; compare: ${COMPARE}` : ''}): SMTP smtp-source → postern → Maildir (accepted → in new/), ${SESSIONS} sessions, ${MESSAGES} × ${SIZE} B;`,
    `IMAP ${imaptest ? `imaptest default profile, 2 × ${Math.max(1, Math.floor(IMAP_CLIENTS / 2))}` : `own mix (no imaptest; imap-own-load.ts), ${IMAP_CLIENTS}`} clients, ${IMAP_SECS} s; ratio = setup / embedded default;`,
    `CPU = seconds of the postern node(s) + of the PostgreSQL server per message / per operation; load average after each phase: ${loads.join(', ')}`,
    table(rows),
  ].join('\n');
}
