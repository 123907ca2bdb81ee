/**
 * IMAP under load (issue 11): imaptest's benchmark mode against Dovecot (Debian's dovecot-imapd, in its default and
 * its high-performance login process model, test/bench/dovecot.ts) and against postern (`postern serve`, the LDIF
 * directory, plain IMAP on loopback with mailbox.allowUnencrypted), one after the other in the same run:
 *
 *   imaptest host=127.0.0.1 port=P user=user%d users=10 pass=… mbox=FILE clients=10 secs=30 seed=1 [logout=0]
 *
 * Two profiles: imaptest's default (each client logs out and in again at the end of a cycle) and `logout=0`
 * (clients stay logged in). Every side starts with empty INBOXes of user1 … user10 and the same generated
 * 2000-message mbox (imaptest APPENDs from it). Printed: imaptest's operation counts per second (its "Totals"
 * line summed over the commands, divided by secs), the servers' CPU time per operation (user + system of all their
 * processes, from /proc), and the ratios postern / Dovecot.
 *
 * imaptest is not a dependency (DEVELOPERS.md): it is used from POSTERN_BENCH_IMAPTEST or /work/tools/imaptest when
 * present; without it this part says so and is skipped (test/bench/imap.bench.ts's own workload still runs).
 * Knobs: POSTERN_BENCH_IMAP_SECS (30), _LOAD_RUNS (1), _LOAD_CLIENTS (10), _SIDES, _PROFILES (subsets, for
 * profiling), POSTERN_BENCH_IMAP_COMPARE=DIR (a postern from another checkout too), POSTERN_BENCH_IMAP_PROF=DIR (postern runs under `node --cpu-prof`, one profile per run, summarised by
 * test/bench/cpuprofile.ts). Nothing here asserts.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { accessSync, chmodSync, constants, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDovecot } from './dovecot.ts';
import { childrenOf } from './postfix.ts';
import { cpuOf, envNumber, table } from './lib.ts';

const num = envNumber('IMAP');
const SECS = num('SECS', 30);
const RUNS = num('LOAD_RUNS', 1);
const CLIENTS = num('LOAD_CLIENTS', 10);
const USERS = 10;
const MESSAGES = 2000;
export const PASSWORD = 'Bench!Passw0rd';
const PROF = process.env.POSTERN_BENCH_IMAP_PROF;
/** For profiling one side: POSTERN_BENCH_IMAP_SIDES=postern, POSTERN_BENCH_IMAP_PROFILES=logout=0. */
const SIDES = process.env.POSTERN_BENCH_IMAP_SIDES?.split(',');
const PROFILES = process.env.POSTERN_BENCH_IMAP_PROFILES?.split(',');
/** imap.workers values to run postern with, e.g. "0,2" (one postern side each); default: the config default. */
const WORKERS = process.env.POSTERN_BENCH_IMAP_WORKERS?.split(',').map(Number);
/** POSTERN_BENCH_IMAP_COMPARE=DIR: a second postern side run from that checkout (its compiled dist/). */
const COMPARE = process.env.POSTERN_BENCH_IMAP_COMPARE;

export function imaptestBinary(): string | null {
  for (const p of [process.env.POSTERN_BENCH_IMAPTEST, '/work/tools/imaptest']) {
    if (!p) continue;
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // not there
    }
  }
  return null;
}

/** A deterministic 2000-message mbox: plain and multipart messages of 0.5–20 KiB. */
export function writeMbox(file: string): void {
  const parts: string[] = [];
  for (let i = 1; i <= MESSAGES; i++) {
    const date = new Date(Date.UTC(2026, 0, 1) + i * 61_000);
    const lines = 10 + ((i * 7919) % 300);
    const body: string[] = [];
    for (let l = 0; l < lines; l++) body.push(`line ${l} of message ${i}: the quick brown fox jumps over the lazy dog ${(i * l) % 1000}`);
    const head = [
      `From sender${i % 50}@example.org ${date.toUTCString().replace(/,/, '').replace(' GMT', '')}`,
      `Return-Path: <sender${i % 50}@example.org>`,
      `From: Sender ${i % 50} <sender${i % 50}@example.org>`,
      `To: User ${(i % USERS) + 1} <user${(i % USERS) + 1}@example.com>`,
      ...(i % 4 === 0 ? [`Cc: Team <team${i % 7}@example.com>`] : []),
      `Subject: Report ${i} about topic ${i % 97}`,
      `Date: ${date.toUTCString().replace('GMT', '+0000')}`,
      `Message-ID: <bench-${i}@example.org>`,
      ...(i > 1 && i % 3 === 0 ? [`In-Reply-To: <bench-${i - 1}@example.org>`] : []),
      'MIME-Version: 1.0',
    ];
    if (i % 5 === 0) {
      const b = `b${i}`;
      parts.push(
        [
          ...head,
          `Content-Type: multipart/alternative; boundary="${b}"`,
          '',
          `--${b}`,
          'Content-Type: text/plain; charset=us-ascii',
          '',
          ...body,
          `--${b}`,
          'Content-Type: text/html; charset=us-ascii',
          '',
          `<html><body><p>${body.slice(0, 20).join('</p><p>')}</p></body></html>`,
          `--${b}--`,
          '',
        ].join('\n'),
      );
    } else {
      parts.push([...head, 'Content-Type: text/plain; charset=us-ascii', '', ...body, ''].join('\n'));
    }
  }
  writeFileSync(file, parts.join('\n'));
}

/** An AD-shaped LDIF with user1 … user10, all with PASSWORD (unicodePwd is UTF-16LE of the quoted password). */
export function writeLdif(file: string, users = USERS): void {
  const pwd = Buffer.from(`"${PASSWORD}"`, 'utf16le').toString('base64');
  const out = ['version: 1', ''];
  for (let u = 1; u <= users; u++) {
    out.push(
      `dn: CN=User ${u},OU=Staff,DC=corp,DC=example`,
      'objectClass: top',
      'objectClass: person',
      'objectClass: organizationalPerson',
      'objectClass: user',
      `cn: User ${u}`,
      `sAMAccountName: user${u}`,
      `userPrincipalName: user${u}@corp.example`,
      `mail: user${u}@example.com`,
      'userAccountControl: 512',
      'accountExpires: 9223372036854775807',
      `unicodePwd:: ${pwd}`,
      '',
    );
  }
  writeFileSync(file, out.join('\n'));
}

const treeCpu = (pid: number) => cpuOf(pid, true) + childrenOf(pid).reduce((s, p) => s + cpuOf(p, false), 0);

/** A free loopback port in 26000–26999 (the range this machine's engineers use for fixed ports). */
export async function freePortInRange(): Promise<number> {
  for (let tries = 0; tries < 200; tries++) {
    const port = 26000 + Math.floor(Math.random() * 1000);
    const ok = await new Promise<boolean>((res) => {
      const s = createServer();
      s.once('error', () => res(false));
      s.listen(port, '127.0.0.1', () => s.close(() => res(true)));
    });
    if (ok) return port;
  }
  throw new Error('no free port in 26000–26999');
}

export interface Side {
  name: string;
  port: number;
  cpu(): number;
  /** CPU seconds of each process of the server by role (postern: `main` and `worker <pid>`), for the split per process. */
  cpuByProcess?(): Map<string, number>;
  stop(): Promise<void>;
}

/**
 * `postern serve` with only an IMAP listener (plain, or implicit TLS with `secure`) on a free port, the LDIF
 * directory of `dir`/users.ldif, mailbox.allowUnencrypted on. `pid` is its process, for memory readings.
 */
export async function startPosternSide(root: string, dir: string, label: string, opts: { secure?: boolean; workers?: number; nodeArgs?: string[] } = {}): Promise<Side & { pid: number }> {
  const dataDir = join(dir, `postern-${label}`);
  mkdirSync(dataDir);
  const port = await freePortInRange();
  const configFile = join(dataDir, 'postern.yaml');
  writeFileSync(
    configFile,
    JSON.stringify({
      hostname: 'postern-bench.example.com',
      dataDir,
      directory: { type: 'ldif', file: join(dir, 'users.ldif') },
      auth: { failureDelayMs: 0, failureDelayMaxMs: 0 },
      ...(opts.workers !== undefined ? { imap: { workers: opts.workers } } : {}),
      listeners: {
        smtp: false,
        submission: false,
        smtps: false,
        imap: opts.secure ? false : { port, host: '127.0.0.1' },
        imaps: opts.secure ? { port, host: '127.0.0.1' } : false,
        pop3: false,
        pop3s: false,
        admin: false,
        http: false,
        https: false,
        managesieve: false,
      },
    }),
  );
  const r = spawnSync(process.execPath, [join(root, 'bin/postern.js'), '--config', configFile, 'settings', 'set', 'mailbox.allowUnencrypted', 'yes'], {
    cwd: root,
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`postern settings set: ${r.stderr}`);
  // Node's own profile names (pid, thread id): one --cpu-prof-name was overwritten by the profile of tsx's loader thread.
  const nodeArgs = [...(opts.nodeArgs ?? []), ...(PROF ? ['--cpu-prof', `--cpu-prof-dir=${PROF}`] : [])];
  const child: ChildProcess = spawn(process.execPath, [...nodeArgs, join(root, 'bin/postern.js'), '--config', configFile, 'serve'], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let out = '';
  let started = false;
  const onData = (d: Buffer) => {
    if (!started) out += d.toString();
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  // The banner's last line comes once every listener is up (one that fails stops the server before it). Generous:
  // with imap.workers three processes load the sources under tsx, and at load average 25 that took over a minute.
  const deadline = Date.now() + 300_000;
  while (!/mail domains: /.test(out)) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`postern did not start:\n${out}`);
    await new Promise((res) => setTimeout(res, 100));
  }
  started = true;
  out = '';
  return {
    name: 'postern',
    port,
    pid: child.pid!,
    cpu: () => treeCpu(child.pid!),
    // imap.workers: the primary's own share apart from its worker processes' (issue 11: after the hand-off the
    // primary should do nothing per command).
    cpuByProcess: () => new Map([['main', cpuOf(child.pid!, false)], ...childrenOf(child.pid!).map((p): [string, number] => [`worker ${p}`, cpuOf(p, false)])]),
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise<void>((res) => child.once('exit', () => res()));
        child.kill('SIGTERM');
        const t = setTimeout(() => {
          try {
            process.kill(-child.pid!, 'SIGKILL');
          } catch {
            // gone
          }
        }, 15_000);
        await exited;
        clearTimeout(t);
      }
    },
  };
}

async function startDovecotSide(dir: string, label: string, model: 'default' | 'high-performance'): Promise<Side> {
  const mailRoot = join(dir, `dovecot-${label}`);
  for (let u = 1; u <= USERS; u++) mkdirSync(join(mailRoot, 'users', `user${u}`), { recursive: true });
  // Dovecot refuses to run mail processes as root: the mail belongs to the Debian `mail` user.
  execFileSync('chown', ['-R', 'mail:mail', mailRoot]);
  const users = Array.from({ length: USERS }, (_, i) => `user${i + 1}`);
  const d = await startDovecot({ mailRoot, users, password: PASSWORD, maxConnections: CLIENTS * 4 + 50, processModel: model });
  return { name: `dovecot ${model}`, port: d.port, cpu: () => treeCpu(d.pid), stop: () => d.destroy() };
}

interface LoadResult {
  ops: number;
  opsPerSec: number;
  cpuMsPerOp: number;
  /** CPU ms per operation of each process (postern with imap.workers: the primary and each worker). */
  perProcess: [string, number][];
  counts: Record<string, number>;
}

async function runImaptest(bin: string, side: Side, mbox: string, profile: 'default' | 'logout=0'): Promise<LoadResult> {
  const args = [
    'host=127.0.0.1',
    `port=${side.port}`,
    'user=user%d',
    `users=${USERS}`,
    `pass=${PASSWORD}`,
    `mbox=${mbox}`,
    `clients=${CLIENTS}`,
    `secs=${SECS}`,
    'seed=1',
    ...(profile === 'logout=0' ? ['logout=0'] : []),
  ];
  const cpu0 = side.cpu();
  const split0 = side.cpuByProcess?.() ?? new Map<string, number>();
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const code = await new Promise<number | null>((res) => child.once('exit', (c) => res(c)));
  const cpu = side.cpu() - cpu0;
  const split = side.cpuByProcess?.() ?? new Map<string, number>();
  // "Totals:", a line of command names, lines of their probabilities (with %), then a line of counts.
  const lines = out.split('\n');
  const at = lines.findIndex((l) => l.startsWith('Totals:'));
  const countLine = lines.slice(at + 2).find((l) => /^[\s\d]+$/.test(l) && l.trim() !== '');
  if (at < 0 || !countLine) throw new Error(`imaptest against ${side.name} (exit ${code}) printed no totals:\n${out.slice(-2000)}`);
  const names = lines[at + 1]!.trim().split(/\s+/);
  const values = countLine.trim().split(/\s+/).map(Number);
  const counts = Object.fromEntries(names.map((n, i) => [n, values[i] ?? 0]));
  const ops = values.reduce((s, v) => s + v, 0);
  const perProcess = [...split].map(([k, v]): [string, number] => [k, ((v - (split0.get(k) ?? 0)) * 1000) / Math.max(1, ops)]);
  return { ops, opsPerSec: ops / SECS, cpuMsPerOp: (cpu * 1000) / Math.max(1, ops), perProcess, counts };
}

export async function benchImapLoad(root: string): Promise<string> {
  const bin = imaptestBinary();
  if (!bin) return 'imaptest load: skipped (no imaptest: set POSTERN_BENCH_IMAPTEST or see DEVELOPERS.md)';
  const dir = mkdtempSync(join(tmpdir(), 'postern-bench-imapload-'));
  chmodSync(dir, 0o755);
  try {
    const mbox = join(dir, 'bench.mbox');
    writeMbox(mbox);
    writeLdif(join(dir, 'users.ldif'));
    const rows = [['profile', 'run', 'server', 'ops/s', 'CPU ms/op', 'postern / this']];
    const summary: string[] = [];
    let n = 0;
    for (let run = 1; run <= RUNS; run++) {
      for (const profile of ['default', 'logout=0'] as const) {
        if (PROFILES && !PROFILES.includes(profile)) continue;
        const results: { name: string; r: LoadResult }[] = [];
        const starts: [string, () => Promise<Side>][] = [
          ['dovecot default', () => startDovecotSide(dir, String(++n), 'default')],
          ['dovecot high-performance', () => startDovecotSide(dir, String(++n), 'high-performance')],
          ...(WORKERS ?? [undefined]).map((w): [string, () => Promise<Side>] => [
            w === undefined ? 'postern' : `postern workers=${w}`,
            async () => ({ ...(await startPosternSide(root, dir, String(++n), { workers: w })), ...(w === undefined ? {} : { name: `postern workers=${w}` }) }),
          ]),
          // The same postern from another checkout (built: `npm run build` there), for before/after in one run.
          ...(COMPARE ? [['postern compare', async () => ({ ...(await startPosternSide(COMPARE, dir, String(++n))), name: `postern ${COMPARE}` })] as [string, () => Promise<Side>]] : []),
        ];
        for (const [name, start] of starts) {
          if (SIDES && !SIDES.some((x) => name.startsWith(x))) continue;
          const side = await start();
          try {
            results.push({ name: side.name, r: await runImaptest(bin, side, mbox, profile) });
          } finally {
            await side.stop();
          }
        }
        const posterns = results.filter((x) => x.name.startsWith('postern'));
        const p = posterns[0]?.r;
        for (const { name, r } of results) {
          // Against each Dovecot: the ops/s ratio of every postern side run (workers=A / workers=B / …).
          const ratio = name.startsWith('postern') || !p ? '' : posterns.map((x) => (x.r.opsPerSec / r.opsPerSec).toFixed(2)).join(' / ');
          rows.push([profile, String(run), name, r.opsPerSec.toFixed(0), r.cpuMsPerOp.toFixed(3), ratio]);
        }
        for (const x of posterns) {
          if (x.r.perProcess.length > 1) summary.push(`${profile} run ${run}: ${x.name} CPU ms/op by process: ${x.r.perProcess.map(([k, v]) => `${k} ${v.toFixed(3)}`).join(', ')}`);
        }
        if (p) summary.push(
          `${profile} run ${run}: postern's counts ${Object.entries(p.counts)
            .map(([k, v]) => `${k} ${v}`)
            .join(', ')}`,
        );
      }
    }
    return [
      `imaptest benchmark mode: ${CLIENTS} clients, users=${USERS}, secs=${SECS}, seed=1, ${MESSAGES}-message mbox, empty INBOXes; ` +
        `Dovecot ${execFileSync('dovecot', ['--version']).toString().trim()}; CPU = user+system of all the server's processes`,
      table(rows),
      ...summary,
    ].join('\n');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
