/**
 * Children that die with their test (STYLE.md): every server, DC, daemon and client a test or the harness spawns goes
 * through spawnChild() / runChild() here, so that no child outlives its test and none can keep `npm test` alive.
 *
 * Each child is the leader of its own process group (`detached`), so one `process.kill(-pid, 'SIGKILL')` also
 * reaches what it forked (spamd's prefork children, a shell's grandchildren). The group is killed:
 * - by the owner's cleanup: `spawnChild(cmd, args, { owner: t })` registers `t.after(kill)`; `kill()`/`stop()` by hand;
 * - in a test file's process, by a file-level `after()` hook of node:test registered when this module is imported.
 *   Node 20.20's runner runs it once every test of the file has finished, *including* tests that timed out or were
 *   cancelled (whose own bodies may still be waiting for the child and would never reach their cleanup);
 * - on process 'exit' (test/run.ts runs `node --test --test-force-exit`, so a file whose tests have finished exits
 *   even while something still holds its event loop, and this hook then kills the groups);
 * - on SIGINT / SIGTERM / SIGHUP to a test file's process (the runner's per-file timeout, Ctrl-C), which would
 *   otherwise end the process without 'exit' hooks and leave the groups orphaned: the signal is passed on to each
 *   group, and after 3 s (or once every leader has exited) the groups are SIGKILLed;
 * - by test/run.ts after each `node --test` run, from the pid files written to $POSTERN_TEST_RUN_DIR/children:
 *   the backstop for a test process that was itself SIGKILLed.
 *
 * Dead is "no such process or a zombie": on this machine orphans are reparented to a PID 1 that may not reap
 * them, so a killed child can linger as a zombie that still answers kill(pid, 0). isAlive() knows that.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { after } from 'node:test';

export interface ChildExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** Anything with an after(fn) hook: a node:test TestContext (t) or a SuiteContext-like object. */
export interface ChildOwner {
  after(fn: () => unknown): void;
}

export interface SpawnChildOptions extends Omit<SpawnOptions, 'detached'> {
  /** For messages and the pid file; default the command. */
  name?: string;
  /** Kill the group when this test ends (t.after). */
  owner?: ChildOwner;
}

export interface Child {
  readonly process: ChildProcess;
  readonly pid: number;
  readonly name: string;
  /** Resolves when the leader has exited (never rejects; a spawn error resolves with code null). */
  readonly exited: Promise<ChildExit>;
  /** The spawn error, if the command could not be started. */
  readonly error: Error | undefined;
  readonly running: boolean;
  /** Sends `signal` (default SIGKILL) to the whole group and resolves when the leader is gone. */
  kill(signal?: NodeJS.Signals): Promise<ChildExit>;
  /** SIGTERM to the group, SIGKILL to the group after graceMs (default 5000); resolves when the leader is gone. */
  stop(graceMs?: number): Promise<ChildExit>;
}

/**
 * Set by test/run.ts (test/harness/runner.ts): the directory of this run, children register their groups under
 * children/ there. A run started inside a test (the harness's own tests) prepends its dir to the list (':'), so its
 * children are registered in the outer run too and the outer sweep finds them if the inner run is killed.
 */
export const RUN_DIR_ENV = 'POSTERN_TEST_RUN_DIR';

interface Registered {
  child: ChildProcess;
  pid: number;
  name: string;
  pidFiles: string[];
}

const live = new Map<number, Registered>();

/** True in a test file's process run by `node --test` (not in test/run.ts, which runs the harness itself). */
const inTestProcess = process.env.NODE_TEST_CONTEXT !== undefined;

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // The group is gone (ESRCH); the leader alone may still be there if it left its group.
    try {
      process.kill(pid, signal);
    } catch {
      /* gone */
    }
  }
}

function unregister(pid: number): void {
  const r = live.get(pid);
  if (!r) return;
  live.delete(pid);
  for (const f of r.pidFiles) rmSync(f, { force: true });
}

/**
 * Kills every process group started through this module by this process, synchronously (it runs in 'exit' hooks).
 * Returns the names of the groups it signalled.
 */
export function killAllChildren(signal: NodeJS.Signals = 'SIGKILL'): string[] {
  const names: string[] = [];
  for (const r of live.values()) {
    names.push(`${r.name} (pid ${r.pid})`);
    killGroup(r.pid, signal);
  }
  // The pid files go only once the leaders are reaped ('exit' below); in an 'exit' hook that never happens, and
  // test/run.ts's sweep then finds groups that are already dead, which it ignores.
  return names;
}

/** Names and pids of the children of this process still running. */
export function liveChildren(): { pid: number; name: string }[] {
  return [...live.values()].map((r) => ({ pid: r.pid, name: r.name }));
}

let hooksInstalled = false;
function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', () => killAllChildren('SIGKILL'));
  if (!inTestProcess) return; // test/run.ts has its own signal handling (it stops the DCs cleanly first)
  let signalled = false;
  for (const [sig, code] of [['SIGINT', 130], ['SIGTERM', 143], ['SIGHUP', 129]] as const) {
    process.on(sig, () => {
      const groups = [...live.values()];
      const finish = () => {
        for (const r of groups) killGroup(r.pid, 'SIGKILL'); // what is left of each group, the leader gone or not
        killAllChildren('SIGKILL');
        process.exit(code);
      };
      if (signalled) finish(); // a second signal: no more waiting
      signalled = true;
      // Pass the signal on first, so a child that cleans up after itself (a `node --test` of the harness's own
      // tests, a daemon) can; then SIGKILL whatever is still there once the groups are empty or after 5 s. Empty
      // groups, not exited leaders: a `node --test` leader exits before its test processes have cleaned up.
      for (const r of groups) killGroup(r.pid, sig);
      void waitForEmptyGroups(groups.map((r) => r.pid), 5000).then(finish);
    });
  }
}

if (inTestProcess) {
  installHooks();
  // A file-level hook: runs when the file's last test has ended, however it ended (passed, failed, timed out,
  // cancelled). A test still waiting on its child is past its timeout by then; killing the group ends that wait.
  after(() => {
    const killed = killAllChildren('SIGKILL');
    if (killed.length > 0 && process.env.POSTERN_TEST_QUIET_CHILDREN !== '1') {
      process.stderr.write(`[children] killed at the end of the file (its test did not): ${killed.join(', ')}\n`);
    }
  });
}

function childrenDirs(): string[] {
  const dirs = (process.env[RUN_DIR_ENV] ?? '').split(delimiter).filter(Boolean);
  return dirs.flatMap((dir) => {
    const d = join(dir, 'children');
    try {
      mkdirSync(d, { recursive: true });
      return [d];
    } catch {
      return []; // an outer run that has ended and removed its dir
    }
  });
}

/** Field 22 of /proc/PID/stat (start time in clock ticks), to tell a reused pid from ours; undefined if gone. */
function startTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm (field 2) may hold spaces and parentheses: split after the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/**
 * spawn() as the leader of a new process group, registered for the kills described at the top of this file.
 * stdio defaults to 'ignore'; a child's pipes hold the event loop, which is why the kills above matter.
 */
export function spawnChild(command: string, args: readonly string[], opts: SpawnChildOptions = {}): Child {
  installHooks();
  const { name = command, owner, ...spawnOpts } = opts;
  const child = spawn(command, args, { stdio: 'ignore', ...spawnOpts, detached: true });
  let error: Error | undefined;
  let exitInfo: ChildExit | undefined;
  const exited = new Promise<ChildExit>((resolve) => {
    child.once('exit', (code, signal) => {
      exitInfo = { code, signal };
      if (child.pid !== undefined) unregister(child.pid);
      resolve(exitInfo);
    });
    child.once('error', (err) => {
      error = err;
      // A spawn failure emits 'error' without 'exit'; a later kill() failure emits 'error' too, then 'exit'.
      if (child.pid === undefined) {
        exitInfo = { code: null, signal: null };
        resolve(exitInfo);
      }
    });
  });
  const pid = child.pid ?? -1;
  if (child.pid !== undefined) {
    const record = JSON.stringify({ pid, name, parent: process.pid, start: startTime(pid), argv: [command, ...args] }) + '\n';
    const pidFiles = childrenDirs().map((d) => join(d, String(pid)));
    for (const f of pidFiles) writeFileSync(f, record);
    live.set(pid, { child, pid, name, pidFiles });
  }
  const running = () => child.pid !== undefined && exitInfo === undefined;
  const kill = (signal: NodeJS.Signals = 'SIGKILL'): Promise<ChildExit> => {
    if (running()) killGroup(pid, signal);
    return exited;
  };
  const handle: Child = {
    process: child,
    pid,
    name,
    exited,
    get error() {
      return error;
    },
    get running() {
      return running();
    },
    kill,
    async stop(graceMs = 5000) {
      if (!running()) {
        // The leader is gone; members of its group may not be (a preforking daemon's children).
        if (child.pid !== undefined) killGroup(pid, 'SIGKILL');
        return exited;
      }
      killGroup(pid, 'SIGTERM');
      const timer = setTimeout(() => killGroup(pid, 'SIGKILL'), graceMs);
      const r = await exited;
      clearTimeout(timer);
      killGroup(pid, 'SIGKILL');
      return r;
    },
  };
  owner?.after(() => handle.kill('SIGKILL'));
  return handle;
}

export interface RunChildOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Written to stdin, which is then closed; default nothing (stdin is closed at once). */
  input?: string | Buffer;
  /** The whole group is killed after this long and the result says so (timedOut); required, no default hang. */
  timeoutMs: number;
  /** Kill the group when this test ends. */
  owner?: ChildOwner;
  name?: string;
}

export interface RunChildResult extends ChildExit {
  stdout: string;
  stderr: string;
  timedOut: boolean;
  /** Milliseconds from spawn to exit. */
  ms: number;
}

/**
 * Runs a command to completion (like execFile) in its own process group, with a deadline after which the group is
 * killed. Resolves with the exit status and the output; rejects only when the command cannot be started.
 */
export async function runChild(command: string, args: readonly string[], opts: RunChildOptions): Promise<RunChildResult> {
  const t0 = Date.now();
  const c = spawnChild(command, args, {
    name: opts.name,
    owner: opts.owner,
    env: opts.env,
    cwd: opts.cwd,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  c.process.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  c.process.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  c.process.stdin!.on('error', () => {}); // EPIPE when the command exits without reading its input
  c.process.stdin!.end(opts.input ?? '');
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    void c.kill('SIGKILL');
  }, opts.timeoutMs);
  const closed = new Promise<void>((resolve) => c.process.once('close', () => resolve()));
  const exit = await c.exited;
  clearTimeout(timer);
  if (c.error && c.pid === -1) throw new Error(`${command}: ${c.error.message}`);
  // 'close' comes once stdout and stderr are drained; a grandchild holding them open is killed with the group.
  killGroup(c.pid, 'SIGKILL');
  await closed;
  return { ...exit, stdout, stderr, timedOut, ms: Date.now() - t0 };
}

export interface ExecChildError extends Error {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  killed: boolean;
}

/**
 * `promisify(execFile)` with the group and the deadline of runChild: resolves with the output when the command
 * exits 0, rejects (code, signal, stdout, stderr, killed) otherwise. `timeout` in ms, default 60 s.
 */
export async function execChild(
  command: string,
  args: readonly string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeout?: number; input?: string | Buffer; owner?: ChildOwner } = {},
): Promise<{ stdout: string; stderr: string }> {
  const timeoutMs = opts.timeout ?? 60_000;
  const r = await runChild(command, args, { env: opts.env, cwd: opts.cwd, input: opts.input, owner: opts.owner, timeoutMs });
  if (r.code === 0) return { stdout: r.stdout, stderr: r.stderr };
  const why = r.timedOut ? `killed after ${timeoutMs} ms` : `exit ${r.code ?? r.signal}`;
  const err = new Error(`${command} ${args.join(' ')}: ${why}\n${r.stderr.slice(-2000)}`) as ExecChildError;
  Object.assign(err, { code: r.code, signal: r.signal, stdout: r.stdout, stderr: r.stderr, killed: r.timedOut });
  throw err;
}

/** Whether pid is a live process: a zombie (killed, not yet reaped by a PID 1 that may never do it) is not. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false; // gone between the two looks
  }
}

/** Resolves once none of the groups has a live member, or after timeoutMs. */
export async function waitForEmptyGroups(pgids: number[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (pgids.some((g) => groupMembers(g).length > 0) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Live (non-zombie) members of process group pgid, from /proc. */
export function groupMembers(pgid: number): number[] {
  const out: number[] = [];
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return out;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // fields[0] is the state (field 3), fields[2] the process group (field 5).
      if (fields[0] !== 'Z' && Number(fields[2]) === pgid) out.push(Number(e));
    } catch {
      /* gone */
    }
  }
  return out;
}

/**
 * For test/run.ts: SIGKILLs every process group registered under runDir/children whose members are still alive, and
 * removes the pid files. Returns what it had to kill (each entry is a child some test process failed to clean up).
 */
export function sweepRegisteredChildren(runDir: string): { pid: number; name: string; parent: number; members: number }[] {
  const dir = join(runDir, 'children');
  let files: string[];
  try {
    files = readdirSync(dir);
  } catch {
    return [];
  }
  const killed: { pid: number; name: string; parent: number; members: number }[] = [];
  for (const f of files) {
    const file = join(dir, f);
    let rec: { pid: number; name: string; parent: number; start?: string };
    try {
      rec = JSON.parse(readFileSync(file, 'utf8')) as typeof rec;
    } catch {
      rmSync(file, { force: true });
      continue;
    }
    // A leader that is still there but started at another time is a different process that reused the pid.
    const leaderStart = startTime(rec.pid);
    const reused = leaderStart !== undefined && rec.start !== undefined && leaderStart !== rec.start;
    const members = reused ? [] : groupMembers(rec.pid);
    if (members.length > 0) {
      killGroup(rec.pid, 'SIGKILL');
      killed.push({ pid: rec.pid, name: rec.name, parent: rec.parent, members: members.length });
    }
    rmSync(file, { force: true });
  }
  return killed;
}
