/**
 * SMTP benchmark (issue 11): messages accepted and in the Maildir per second, postern against Postfix from Debian
 * (test/bench/postfix.ts: smtpd → cleanup → qmgr → virtual, no filters) in the same run, driven by Postfix's own
 * load generator smtp-source. Measured "accepted → in the Maildir": from smtp-source's start until N files are
 * in the recipient's Maildir new/ directory (polled). Also the servers' CPU time per message (user + system, all
 * their processes: Postfix's master collects its exited children's times).
 *
 * postern runs as `postern serve` (bin/postern.js) in its own process, port 25 role, with the LDIF directory, the
 * content filters off (Postfix has none either) and the pregreet wait off (Postfix's smtpd has none without
 * postscreen).
 *
 * Cases (each run for both servers, POSTERN_BENCH_SMTP_RUNS times, default 2):
 *   1 session    smtp-source -s 1  -m 1000   (a connection per message, as most senders do)
 *   20 sessions  smtp-source -s 20 -m 5000
 *   20 sessions, connections reused (smtp-source -d)
 * Sizes: POSTERN_BENCH_SMTP_ONE (1000), _MANY (5000), _SIZE (10240 bytes). POSTERN_BENCH_SMTP_CASES=one,many,reuse
 * picks cases (default all three). POSTERN_BENCH_SMTP_PROF=DIR starts
 * postern with `node --cpu-prof --cpu-prof-dir=DIR` (one profile per postern process and run: the SMTP workers
 * write theirs too). POSTERN_BENCH_SMTP_WORKERS=0,2 runs postern once per smtp.workers value in the list (default:
 * the configuration's default), each against the same Postfix run. POSTERN_BENCH_SMTP_COMPARE=DIR also runs the
 * postern of another checkout (e.g. `git archive main | tar -x -C DIR`, node_modules linked), so that a change is
 * measured before and after in one run, both against the same Postfix. POSTERN_BENCH_SMTP_STRACE=DIR runs each
 * postern under `strace -c -f` and leaves the system-call counts in DIR (one file per postern run; the CPU and
 * time columns are then strace's, not postern's: use it for counts only). Nothing here asserts.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { childrenOf, freePort, startPostfix } from './postfix.ts';
import { cpuOf, envNumber, table } from './lib.ts';

const num = envNumber('SMTP');
const ONE = num('ONE', 1000);
const MANY = num('MANY', 5000);
const SIZE = num('SIZE', 10240);
const RUNS = num('RUNS', 2);
const PROF = process.env.POSTERN_BENCH_SMTP_PROF;
const STRACE = process.env.POSTERN_BENCH_SMTP_STRACE;
/** smtp.workers values to measure; undefined: postern's default. */
const WORKERS: (number | undefined)[] = process.env.POSTERN_BENCH_SMTP_WORKERS ? process.env.POSTERN_BENCH_SMTP_WORKERS.split(',').map(Number) : [undefined];
/** Checkouts to run postern from, labelled: this one, and the one to compare with. */
const ROOTS: (string | undefined)[] = [undefined, ...(process.env.POSTERN_BENCH_SMTP_COMPARE ? [process.env.POSTERN_BENCH_SMTP_COMPARE] : [])];
const RECIPIENT = 'john@example.com';

interface Side {
  name: string;
  port: number;
  newDir: string;
  /** CPU seconds used so far by all the server's processes. */
  cpu(): number;
  /** CPU seconds of the main thread (postern's event loop), when there is one. */
  loopCpu?(): number;
  stop(): Promise<void>;
}

interface Case {
  label: string;
  sessions: number;
  messages: number;
  reuse: boolean;
}

function countFiles(dir: string): number {
  try {
    return readdirSync(dir).length;
  } catch {
    return 0;
  }
}

async function startPosternSide(root: string, run: number, workers: number | undefined, label = ''): Promise<Side> {
  const dataDir = mkdtempSync(join(tmpdir(), 'postern-bench-smtp-'));
  const port = await freePort();
  const configFile = join(dataDir, 'postern.yaml');
  writeFileSync(
    configFile,
    JSON.stringify({
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
      smtp: { maxClients: 1000, ...(workers === undefined ? {} : { workers }) },
    }),
  );
  const cli = (args: string[]) => {
    const r = spawnSync(process.execPath, [join(root, 'bin/postern.js'), '--config', configFile, ...args], { cwd: root, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`postern ${args.join(' ')}: ${r.stderr}`);
  };
  cli(['domain', 'add', 'example.com']);
  cli(['settings', 'set', 'filter.antivirus', 'no', 'filter.spam', 'no']);
  // A mailbox that exists before the start is claimed in place by its AD account (issue 13), so it stays at
  // users/john.smith where the bench counts the files (a new one would be users/<objectGUID>).
  for (const sub of ['cur', 'new', 'tmp']) mkdirSync(join(dataDir, 'mail', 'users', 'john.smith', 'Maildir', sub), { recursive: true });
  const nodeArgs = PROF ? ['--cpu-prof', `--cpu-prof-dir=${PROF}`, `--cpu-prof-name=postern-${Date.now()}-${run}.cpuprofile`] : [];
  const command = [process.execPath, ...nodeArgs, join(root, 'bin/postern.js'), '--config', configFile, 'serve'];
  if (STRACE) command.unshift('strace', '-c', '-f', '-o', join(STRACE, `postern-${Date.now()}-${run}${label.replace(/\W+/g, '-')}.strace`));
  const child: ChildProcess = spawn(command[0], command.slice(1), {
    cwd: root,
    env: { ...process.env, POSTERN_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const deadline = Date.now() + 120_000; // a start (tsx compiling the sources) can take a minute on the loaded machine
  while (!/mail domains: /.test(out)) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`postern did not start:\n${out}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    name: (workers === undefined ? 'postern' : `postern (smtp.workers ${workers})`) + label,
    port,
    newDir: join(dataDir, 'mail', 'users', 'john.smith', 'Maildir', 'new'),
    // The SMTP worker processes are alive children: their time is not in the parent's cutime until they exit.
    cpu: () => cpuOf(child.pid!, true) + childrenOf(child.pid!).reduce((s, p) => s + cpuOf(p, false), 0),
    // /proc/<pid>/task/<pid> is the main thread alone: the event loop, without libuv's pool (fsync, file I/O).
    loopCpu: () => cpuOf(child.pid!, false, `/proc/${child.pid}/task/${child.pid}/stat`),
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise<void>((r) => child.once('exit', () => r()));
        // The whole group (detached: postern leads it, or strace does with postern under it): strace writes its
        // counts when the postern it traces has exited.
        const signal = (sig: NodeJS.Signals) => {
          try {
            process.kill(-child.pid!, sig);
          } catch {
            child.kill(sig);
          }
        };
        signal('SIGTERM');
        const t = setTimeout(() => signal('SIGKILL'), 15_000);
        await exited;
        clearTimeout(t);
      }
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

async function startPostfixSide(): Promise<Side> {
  const pf = await startPostfix(RECIPIENT);
  const master = pf.pids()[0];
  return {
    name: 'postfix',
    port: pf.port,
    newDir: pf.newDir,
    cpu: () => cpuOf(master, true) + childrenOf(master).reduce((s, p) => s + cpuOf(p, false), 0),
    stop: () => pf.destroy(),
  };
}

interface Result {
  seconds: number;
  rate: number;
  cpuMsPerMessage: number;
  loopCpuMsPerMessage?: number;
}

/** Sends `c.messages` with smtp-source and waits until they are all in new/. */
async function runCase(side: Side, c: Case): Promise<Result> {
  const before = countFiles(side.newDir);
  const cpu0 = side.cpu();
  const loop0 = side.loopCpu?.() ?? 0;
  const t0 = performance.now();
  const args = ['-s', String(c.sessions), '-m', String(c.messages), '-l', String(SIZE), '-M', 'client.example.net', '-f', 'sender@example.net', '-t', RECIPIENT];
  if (c.reuse) args.unshift('-d');
  const src = spawn('smtp-source', [...args, `127.0.0.1:${side.port}`], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  src.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const srcDone = new Promise<number | null>((r) => src.once('exit', (code) => r(code)));
  const limit = Date.now() + Math.max(120_000, c.messages * 200);
  for (;;) {
    const n = countFiles(side.newDir) - before;
    if (n >= c.messages) break;
    if (Date.now() > limit) {
      src.kill('SIGKILL');
      throw new Error(`${side.name}: only ${n} of ${c.messages} messages arrived; smtp-source said: ${err.slice(-500)}`);
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  const seconds = (performance.now() - t0) / 1000;
  const code = await srcDone;
  if (code !== 0) throw new Error(`${side.name}: smtp-source exited ${code}: ${err.slice(-500)}`);
  // Let the server finish what it does after delivery (queue removal) before the CPU is read.
  await new Promise((r) => setTimeout(r, 500));
  const cpu = side.cpu() - cpu0;
  const loop = side.loopCpu ? side.loopCpu() - loop0 : undefined;
  return { seconds, rate: c.messages / seconds, cpuMsPerMessage: (cpu * 1000) / c.messages, loopCpuMsPerMessage: loop === undefined ? undefined : (loop * 1000) / c.messages };
}

export async function benchSmtp(root: string): Promise<string> {
  if (!existsSync('/proc/self/stat')) throw new Error('the SMTP benchmark reads /proc (Linux only)');
  const cases: Case[] = [
    { label: `1 session, ${ONE} × ${SIZE} B`, sessions: 1, messages: ONE, reuse: false },
    { label: `20 sessions, ${MANY} × ${SIZE} B`, sessions: 20, messages: MANY, reuse: false },
    { label: `20 sessions, ${MANY} × ${SIZE} B, connections reused (-d)`, sessions: 20, messages: MANY, reuse: true },
  ];
  const pick = (process.env.POSTERN_BENCH_SMTP_CASES ?? 'one,many,reuse').split(',');
  const keys = ['one', 'many', 'reuse'];
  const chosen = cases.filter((_, i) => pick.includes(keys[i]));
  const rows: string[][] = [['case', 'run', 'postern', 'postfix msg/s', 'postern msg/s', 'ratio', 'postfix CPU ms/msg', 'postern CPU ms/msg', 'postern main event loop ms/msg']];
  for (let run = 1; run <= RUNS; run++) {
    // Fresh servers per run, started one after the other so that neither runs while the other is measured.
    for (const c of chosen) {
      const results: { name: string; result: Result }[] = [];
      const posterns = ROOTS.flatMap((other) => WORKERS.map((w) => () => startPosternSide(other ?? root, run, w, other ? ` [${other}]` : '')));
      for (const start of [() => startPostfixSide(), ...posterns]) {
        const side = await start();
        try {
          // A short warm-up: the first connections pay for process starts (Postfix) and JIT (postern).
          await runCase(side, { label: 'warm-up', sessions: Math.min(c.sessions, 5), messages: 50, reuse: false });
          results.push({ name: side.name, result: await runCase(side, c) });
        } finally {
          await side.stop();
        }
      }
      const p = results[0].result;
      for (const { name, result: o } of results.slice(1)) {
        rows.push([c.label, String(run), name, p.rate.toFixed(0), o.rate.toFixed(0), (o.rate / p.rate).toFixed(2), p.cpuMsPerMessage.toFixed(2), o.cpuMsPerMessage.toFixed(2), o.loopCpuMsPerMessage?.toFixed(2) ?? '']);
        console.error(rows.at(-1)!.join('  '));
      }
    }
  }
  return [
    `SMTP: smtp-source → server → Maildir (accepted → in new/), ${SIZE}-byte messages; ratio = postern / Postfix`,
    table(rows),
  ].join('\n');
}
