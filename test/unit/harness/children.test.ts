/**
 * A test cannot hang the run (issue 9): an inner `node --test`, started exactly as test/run.ts starts each tier
 * (test/harness/runner.ts), runs test/fixtures/harness/hung-child.fixture.ts, whose test spawns a long-lived child
 * (with a grandchild in its group) through test/harness/children.ts and then never finishes. The inner run must end
 * by itself, long before its watchdog, report the timeout, and leave neither process alive.
 *
 * Remove the cleanup in children.ts (the file-level after() hook and the 'exit' / signal hooks) and these tests fail:
 * the inner run hangs until the watchdog kills it (forceExit false), or ends with the child still alive.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { isAlive, type Child } from '../../harness/children.ts';
import { parseTapCounts, runNodeTest, type RunNodeTestOptions, type RunNodeTestResult } from '../../harness/runner.ts';
import { ROOT } from '../../helpers/cli.ts';
import { waitFor } from '../../helpers/wait.ts';

const FIXTURE = join(ROOT, 'test/fixtures/harness/hung-child.fixture.ts');
/** The inner run takes 2-3 s on a quiet machine (node + tsx start, a 1 s timeout); this is the watchdog's limit. */
const INNER_DEADLINE_MS = 60_000;
/** Per outer test: the inner deadline plus room to start and to look at the pids. */
const TIMEOUT = { timeout: 90_000 };

function fixturePids(pidFile: string): number[] {
  try {
    return readFileSync(pidFile, 'utf8').split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

interface Fixture {
  dir: string;
  pidFile: string;
  env(mode: string): NodeJS.ProcessEnv;
}

/** A temp dir for one inner run; the fixture's processes are killed when the test ends, should an assertion fail. */
function prepareFixture(t: TestContext): Fixture {
  const dir = mkdtempSync(join(tmpdir(), 'postern-children-test-'));
  const pidFile = join(dir, 'pids');
  t.after(() => {
    for (const pid of fixturePids(pidFile)) {
      for (const target of [-pid, pid]) {
        try {
          process.kill(target, 'SIGKILL');
        } catch {
          /* gone, as it should be */
        }
      }
    }
    rmSync(dir, { recursive: true, force: true });
  });
  return {
    dir,
    pidFile,
    env: (mode) => ({ ...process.env, FIXTURE_MODE: mode, FIXTURE_PID_FILE: pidFile, POSTERN_TEST_QUIET_CHILDREN: '1' }),
  };
}

async function runFixture(
  t: TestContext,
  mode: string,
  over: Partial<RunNodeTestOptions> = {},
  fixture: Fixture = prepareFixture(t),
): Promise<{ result: RunNodeTestResult; pids: number[] }> {
  const result = await runNodeTest({
    name: `fixture-${mode}`,
    files: [FIXTURE],
    cwd: ROOT,
    env: fixture.env(mode),
    runDir: join(fixture.dir, 'run'),
    fileTimeoutMs: 120_000,
    deadline: Date.now() + INNER_DEADLINE_MS,
    reporter: 'tap',
    stdio: 'pipe',
    // The backstop of test/run.ts would hide a test process that did not clean up: off unless a test wants it.
    sweep: false,
    ...over,
  });
  return { result, pids: fixturePids(fixture.pidFile) };
}

/** Waits (a SIGKILLed process can take a moment to go) until none of pids is alive; fails naming the live ones. */
async function assertAllGone(pids: number[]): Promise<void> {
  assert.equal(pids.length, 2, 'the fixture recorded its child and grandchild');
  await waitFor(`pids ${pids.join(', ')} to be gone`, () => pids.every((p) => !isAlive(p)), { timeoutMs: 10_000 }).catch(() => {
    assert.fail(`still alive after the inner run ended: ${pids.filter(isAlive).join(', ')}`);
  });
}

function assertEndedByItself(r: RunNodeTestResult): void {
  assert.equal(r.watchdog, false, `the inner run did not end by itself; the watchdog killed it after ${r.ms} ms\n${r.stdout}\n${r.stderr}`);
  assert.notEqual(r.code, 0, 'a run with a timed-out test fails');
}

test('a test that times out with a child running: the run still ends, reports the timeout, and the child is killed', TIMEOUT, async (t) => {
  const { result, pids } = await runFixture(t, 'test-timeout');
  assertEndedByItself(result);
  assert.match(result.stdout, /test timed out after 1000ms/);
  assert.deepEqual(
    { pass: result.counts?.pass, cancelled: result.counts?.cancelled, fail: result.counts?.fail },
    { pass: 1, cancelled: 1, fail: 0 },
    'the timed-out test is reported and the next one still runs',
  );
  await assertAllGone(pids);
});

test('without --test-force-exit the file-level cleanup alone ends the wait on the child', TIMEOUT, async (t) => {
  const { result, pids } = await runFixture(t, 'test-timeout', { forceExit: false });
  assertEndedByItself(result);
  assert.match(result.stdout, /test timed out after 1000ms/);
  await assertAllGone(pids);
});

test('a describe() timeout that cancels a test waiting on its child (the queue-crash hang) ends the run', TIMEOUT, async (t) => {
  const { result, pids } = await runFixture(t, 'suite-timeout', { forceExit: false });
  assertEndedByItself(result);
  assert.match(result.stdout, /test timed out after 1500ms/);
  assert.match(result.stdout, /test did not finish before its parent and was cancelled/);
  await assertAllGone(pids);
});

test('SIGTERM to the runner (as Ctrl-C or a CI cancel reaches it) kills the children of its test processes', TIMEOUT, async (t) => {
  let runner: Child | undefined;
  const fixture = prepareFixture(t);
  const running = runFixture(t, 'wait', { onSpawn: (c) => (runner = c) }, fixture);
  await waitFor('the fixture to start its child', () => fixturePids(fixture.pidFile).length === 2, { timeoutMs: 45_000 });
  // The runner leads its own group with its test processes in it: signal the group, as the terminal would.
  process.kill(-runner!.pid, 'SIGTERM');
  const { result, pids } = await running;
  assertEndedByItself(result);
  await assertAllGone(pids);
});

test('a test process killed with SIGKILL cannot clean up: the driver sweeps the groups it registered', TIMEOUT, async (t) => {
  const { result, pids } = await runFixture(t, 'sigkill', { sweep: true });
  assertEndedByItself(result);
  assert.deepEqual(
    result.leftovers.map((l) => ({ name: l.name, members: l.members })),
    [{ name: 'fixture: long-lived child', members: 2 }],
  );
  await assertAllGone(pids);
});

test('parseTapCounts reads the closing lines of a TAP report; a report cut short has none', () => {
  const tap = ['TAP version 13', 'ok 1 - a', '1..1', '# tests 3', '# suites 1', '# pass 2', '# fail 1', '# cancelled 0', '# skipped 0', '# todo 0', '# duration_ms 5'].join('\n');
  assert.deepEqual(parseTapCounts(tap), { tests: 3, suites: 1, pass: 2, fail: 1, cancelled: 0, skipped: 0, todo: 0 });
  assert.equal(parseTapCounts('TAP version 13\nok 1 - a\n'), undefined);
});

test('a runner stalled by a file that wrote a truncated v8 frame (nodejs/node#62693) is killed and reported stalled', TIMEOUT, async (t) => {
  const fixture = prepareFixture(t);
  const result = await runNodeTest({
    name: 'fixture-stall',
    files: [join(ROOT, 'test/fixtures/harness/stalls-runner.fixture.ts')],
    cwd: ROOT,
    env: fixture.env('stall'),
    runDir: join(fixture.dir, 'run'),
    fileTimeoutMs: 120_000,
    deadline: Date.now() + INNER_DEADLINE_MS,
    reporter: 'tap',
    stdio: 'pipe',
    sweep: false,
    stallMs: 3_000,
  });
  assert.equal(result.watchdog, false, 'ended by the stall check, before the deadline');
  assert.equal(result.stalled, true);
  assert.notEqual(result.code, 0);
});
