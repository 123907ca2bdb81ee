/**
 * Cluster benchmark (issue 16): what the shared engine costs. SMTP throughput, smtp-source → `postern serve` →
 * Maildir (accepted → in new/, as smtp.bench.ts measures it), for:
 *   embedded     one node on the embedded default (state sqlite)
 *   pg, 1 node   one node with state postgres
 *   pg, 2 nodes  two nodes with state postgres on one database, the load split between them (two smtp-source
 *                processes at once, half the sessions and messages each)
 * printed as msg/s and as ratios against the embedded default. On one 2-core machine the two nodes share the cores:
 * the point is the cost of PostgreSQL, not a speed-up.
 *
 * What is shared with state postgres on this branch: settings, trace, send-limit counters, the cluster registry.
 * Each node has its own dataDir (queue and Maildir): the queue on PostgreSQL (branch pgqueue) and the shared store
 * (pgstore) are other branches; with them merged this bench measures the same three setups unchanged.
 * The PostgreSQL is the test harness's throw-away one (test/harness/postgres.ts), started for the bench.
 *
 * Knobs: POSTERN_BENCH_CLUSTER_MESSAGES (2000), _SESSIONS (20), _SIZE (10240), _RUNS (2). IMAP ops/s are not
 * measured here yet (see the final report of the branch). Nothing here asserts.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startPostgres, type Postgres } from '../harness/postgres.ts';
import { createTestDatabase } from '../helpers/pg-database.ts';
import { envNumber, table } from './lib.ts';
import { freePort } from './postfix.ts';

const num = envNumber('CLUSTER');
const MESSAGES = num('MESSAGES', 2000);
const SESSIONS = num('SESSIONS', 20);
const SIZE = num('SIZE', 10240);
const RUNS = num('RUNS', 2);
const RECIPIENT = 'john@example.com';

interface Node {
  port: number;
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

async function startNode(root: string, state: Record<string, unknown>): Promise<Node> {
  const dataDir = mkdtempSync(join(tmpdir(), 'postern-bench-cluster-'));
  const port = await freePort();
  const base = {
    hostname: 'postern-bench.example.com',
    dataDir,
    directory: { type: 'ldif', file: join(root, 'fixtures/ad/corp.ldif') },
    listeners: {
      smtp: { port, host: '127.0.0.1', pregreet: { waitMs: 0 } },
      submission: false,
      smtps: false,
      imap: false,
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
  // The settings are prepared in the node's settings.db with the embedded store; the first node on an empty
  // PostgreSQL brings them along, a later one takes the database's.
  const prep = join(dataDir, 'prep.yaml');
  writeFileSync(prep, JSON.stringify(base));
  const cli = (args: string[]) => {
    const r = spawnSync(process.execPath, [join(root, 'bin/postern.js'), '--config', prep, ...args], { cwd: root, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`postern ${args.join(' ')}: ${r.stderr}`);
  };
  cli(['domain', 'add', 'example.com']);
  cli(['settings', 'set', 'filter.antivirus', 'no', 'filter.spam', 'no']);
  for (const sub of ['cur', 'new', 'tmp']) mkdirSync(join(dataDir, 'mail', 'users', 'john.smith', 'Maildir', sub), { recursive: true });
  const configFile = join(dataDir, 'postern.yaml');
  writeFileSync(configFile, JSON.stringify({ ...base, state }));
  const child: ChildProcess = spawn(process.execPath, [join(root, 'bin/postern.js'), '--config', configFile, 'serve'], {
    cwd: root,
    env: { ...process.env, POSTERN_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const deadline = Date.now() + 120_000;
  while (!/mail domains: /.test(out)) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`postern did not start:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    port,
    newDir: join(dataDir, 'mail', 'users', 'john.smith', 'Maildir', 'new'),
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
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** smtp-source against every node at once (sessions and messages split evenly); msg/s until all are in new/. */
async function load(nodes: Node[], messages: number, sessions: number): Promise<number> {
  const before = nodes.reduce((n, x) => n + countFiles(x.newDir), 0);
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
    const n = nodes.reduce((k, x) => k + countFiles(x.newDir), 0) - before;
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

export async function benchCluster(root: string): Promise<string> {
  if (!existsSync('/usr/sbin/smtp-source') && spawnSync('smtp-source', []).error) throw new Error('smtp-source (Debian postfix) is needed');
  const pg: Postgres = await startPostgres();
  const rows: string[][] = [['run', 'setup', 'msg/s', 'ratio to embedded']];
  try {
    for (let run = 1; run <= RUNS; run++) {
      const setups: { label: string; start(): Promise<Node[]> }[] = [
        { label: 'embedded (sqlite), 1 node', start: async () => [await startNode(root, { type: 'sqlite' })] },
        {
          label: 'postgres, 1 node',
          start: async () => {
            const db = await createTestDatabase({ baseUrl: pg.url, prefix: 'bench1' });
            return [await startNode(root, { type: 'postgres', url: db.url })];
          },
        },
        {
          label: 'postgres, 2 nodes (load split)',
          start: async () => {
            const db = await createTestDatabase({ baseUrl: pg.url, prefix: 'bench2' });
            const a = await startNode(root, { type: 'postgres', url: db.url });
            return [a, await startNode(root, { type: 'postgres', url: db.url })];
          },
        },
      ];
      let embedded = 0;
      for (const s of setups) {
        const nodes = await s.start();
        try {
          await load(nodes, 50 * nodes.length, Math.min(5, SESSIONS));
          const rate = await load(nodes, MESSAGES, SESSIONS);
          if (!embedded) embedded = rate;
          rows.push([String(run), s.label, rate.toFixed(0), (rate / embedded).toFixed(2)]);
          console.error(rows.at(-1)!.join('  '));
        } finally {
          for (const n of nodes) await n.stop();
        }
      }
    }
  } finally {
    await pg.destroy();
  }
  return [
    `cluster: smtp-source → postern → Maildir (accepted → in new/), ${SESSIONS} sessions, ${MESSAGES} × ${SIZE} B; ratio = setup / embedded default`,
    table(rows),
  ].join('\n');
}
