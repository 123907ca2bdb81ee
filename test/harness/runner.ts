/**
 * One `node --test` run over a set of test files, as test/run.ts runs each tier, such that no test can keep it
 * alive:
 * - --test-force-exit: a file's process exits once its tests have finished, even if something (a socket, a timer, a
 *   child's pipe) still holds its event loop; test/harness/children.ts kills the file's children on that exit;
 * - --test-timeout=fileTimeoutMs: Node 20's runner applies it to each *file* (the parent's subtest per file), a
 *   generous limit after which the runner kills the file's process, for a test without a timeout that never ends;
 * - the runner leads its own process group, so a watchdog (the whole run's deadline) or a signal can end it and every
 *   test process at once; afterwards the process groups the test processes registered under runDir/children that
 *   are still alive are killed (a test process that was SIGKILLed could not kill its own children).
 * The summary (`# pass N` ...) is written to runDir/NAME.counts by test/harness/summary-reporter.mjs.
 */
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RUN_DIR_ENV, spawnChild, sweepRegisteredChildren, waitForEmptyGroups, type Child } from './children.ts';

const SUMMARY_REPORTER = join(dirname(fileURLToPath(import.meta.url)), 'summary-reporter.mjs');

export const COUNT_NAMES = ['tests', 'suites', 'pass', 'fail', 'cancelled', 'skipped', 'todo'] as const;
export type Counts = Record<(typeof COUNT_NAMES)[number], number>;

export interface RunNodeTestOptions {
  /** For messages and the counts file's name (unit, protocol, integration). */
  name: string;
  /** Test files, relative to cwd or absolute. */
  files: string[];
  cwd: string;
  env: NodeJS.ProcessEnv;
  /** Extra `node --test` options (--test-name-pattern=..., --test-only). */
  args?: string[];
  /** Directory of this run (pid files of the children, counts); given to the tests as POSTERN_TEST_RUN_DIR. */
  runDir: string;
  /** Per test file limit (see above). */
  fileTimeoutMs: number;
  /** Date.now() value after which the runner and everything it started are killed (the whole run's watchdog). */
  deadline: number;
  /** Default true; false only to show what happens without it (the harness's own tests). */
  forceExit?: boolean;
  /** How long the runner may have no test process before it counts as stalled (default 120 s; see `stalled`). */
  stallMs?: number;
  /** Default true: kill the registered groups still alive after the runner ended. false only to show what the
   * test processes' own cleanup does without this backstop (the harness's own tests). */
  sweep?: boolean;
  /** Reporter to stdout; default spec. */
  reporter?: string;
  /** stdout/stderr of the runner: 'inherit' (default) or 'pipe' (then read them from `child`). */
  stdio?: 'inherit' | 'pipe';
  /** Called with the runner once it is spawned (test/run.ts forwards signals to it). */
  onSpawn?: (child: Child) => void;
  say?: (msg: string) => void;
}

export interface RunNodeTestResult {
  name: string;
  /** The runner's exit code (128+n for a signal); 1 when the watchdog killed it. */
  code: number;
  ms: number;
  /** The root's closing counts; undefined if the runner died before reporting them. */
  counts: Counts | undefined;
  watchdog: boolean;
  /**
   * The runner had no test process for stallMs and was killed: Node 20's runner can spin forever on what a file's
   * process wrote last (nodejs/node#62693: a v8 frame header without its whole frame; its drain loop makes no
   * progress). No file's tests are running then, so the tier can simply be run again.
   */
  stalled: boolean;
  /** Process groups still alive after the runner ended, which the sweep killed. */
  leftovers: { pid: number; name: string; parent: number; members: number }[];
  /** The runner's output when stdio is 'pipe'. */
  stdout: string;
  stderr: string;
}

/** The closing `# tests N`, `# pass N` ... lines of a TAP report or a counts file (the last of each). */
export function parseTapCounts(tap: string): Counts | undefined {
  const counts: Partial<Counts> = {};
  for (const line of tap.split('\n')) {
    const m = /^# (tests|suites|pass|fail|cancelled|skipped|todo) (\d+)$/.exec(line.trimEnd());
    if (m) counts[m[1] as keyof Counts] = Number(m[2]);
  }
  return COUNT_NAMES.every((k) => counts[k] !== undefined) ? (counts as Counts) : undefined;
}

export async function runNodeTest(opts: RunNodeTestOptions): Promise<RunNodeTestResult> {
  const say = opts.say ?? (() => {});
  const t0 = Date.now();
  mkdirSync(opts.runDir, { recursive: true });
  const countsFile = join(opts.runDir, `${opts.name}.counts`);
  const args = [
    '--import',
    'tsx',
    '--test',
    ...(opts.forceExit === false ? [] : ['--test-force-exit']),
    `--test-timeout=${opts.fileTimeoutMs}`,
    `--test-reporter=${opts.reporter ?? 'spec'}`,
    '--test-reporter-destination=stdout',
    `--test-reporter=${SUMMARY_REPORTER}`,
    '--test-reporter-destination=stdout',
    ...(opts.args ?? []),
    ...opts.files,
  ];
  const pipe = opts.stdio === 'pipe';
  // Set in a test process: a runner started from one (the harness's own tests) would take itself for a file's
  // child and report in the runner's internal protocol.
  // An outer run's dirs stay on the list: its sweep then also finds what this run's test processes spawned.
  const runDirs = [opts.runDir, ...(opts.env[RUN_DIR_ENV] ?? '').split(delimiter).filter(Boolean)].join(delimiter);
  const env: NodeJS.ProcessEnv = { ...opts.env, [RUN_DIR_ENV]: runDirs, POSTERN_TEST_SUMMARY_FILE: countsFile };
  delete env.NODE_TEST_CONTEXT;
  const runner = spawnChild(process.execPath, args, {
    name: `node --test (${opts.name})`,
    cwd: opts.cwd,
    env,
    stdio: ['ignore', pipe ? 'pipe' : 'inherit', pipe ? 'pipe' : 'inherit'],
  });
  let stdout = '';
  let stderr = '';
  runner.process.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  runner.process.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  opts.onSpawn?.(runner);
  let watchdog = false;
  const timer = setTimeout(
    () => {
      watchdog = true;
      say(
        `WATCHDOG: the run passed its deadline during the ${opts.name} tier (${Math.round((Date.now() - t0) / 1000)} s into it): ` +
          'killing node --test, its test processes and every child they registered',
      );
      void runner.kill('SIGKILL');
    },
    Math.max(0, opts.deadline - Date.now()),
  );
  // Between two files the runner is without a test process for milliseconds; a stalled one is without one for good.
  let stalled = false;
  let busySince = Date.now();
  const stallMs = opts.stallMs ?? 120_000;
  const stallCheck = setInterval(() => {
    if (runner.pid <= 0 || hasNodeChild(runner.pid)) {
      busySince = Date.now();
      return;
    }
    if (Date.now() - busySince < stallMs) return;
    stalled = true;
    clearInterval(stallCheck);
    say(
      `STALLED: node --test (${opts.name}) has run no test file for ${Math.round(stallMs / 1000)} s but has not ended ` +
        '(the Node 20 runner loop of nodejs/node#62693): killing it',
    );
    void runner.kill('SIGKILL');
  }, 2_000);
  const exit = await runner.exited;
  clearTimeout(timer);
  clearInterval(stallCheck);
  if (runner.error && runner.pid === -1) say(`cannot start node --test: ${runner.error.message}`);
  // Test processes the runner left behind share its group. After a signal the runner may end before they have
  // killed their own children: give them a few seconds (an empty group does not wait), then SIGKILL the rest.
  if (!watchdog) await waitForEmptyGroups([runner.pid], 10_000);
  try {
    process.kill(-runner.pid, 'SIGKILL'); // the leader has exited: Child.kill() would not signal the group any more
  } catch {
    /* the group is empty */
  }
  const leftovers = opts.sweep === false ? [] : sweepRegisteredChildren(opts.runDir);
  for (const l of leftovers) {
    say(`killed a process group left running by test process ${l.parent}: ${l.name} (pid ${l.pid}, ${l.members} process(es))`);
  }
  let counts: Counts | undefined;
  try {
    counts = parseTapCounts(readFileSync(countsFile, 'utf8'));
  } catch {
    counts = undefined;
  }
  const signo = exit.signal ? (({ SIGINT: 2, SIGTERM: 15, SIGKILL: 9, SIGHUP: 1 }) as Record<string, number>)[exit.signal] ?? 1 : 0;
  const code = watchdog || stalled ? 1 : (exit.code ?? 128 + signo);
  return { name: opts.name, code, ms: Date.now() - t0, counts, watchdog, stalled, leftovers, stdout, stderr };
}

/** Whether a node process (a test file's) is a child of pid, from /proc (the runner's own esbuild is not one). */
function hasNodeChild(pid: number): boolean {
  let names: string[];
  try {
    names = readdirSync('/proc');
  } catch {
    return true; // no /proc: never call the runner stalled
  }
  for (const name of names) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      // pid (comm) state ppid ...: comm may hold spaces and parentheses, so split after the last ')'.
      const close = stat.lastIndexOf(')');
      const ppid = Number(stat.slice(close + 2).split(' ')[1]);
      if (ppid === pid && stat.slice(stat.indexOf('(') + 1, close) === 'node') return true;
    } catch {
      /* the process ended meanwhile */
    }
  }
  return false;
}
