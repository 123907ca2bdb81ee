/**
 * Services test/run.ts shares between test files (clamd, spamd, the second Samba DC, PostgreSQL), and what their harnesses have
 * in common: a free port, a daemon supervised as a child process group, and the control endpoint through which a
 * test process stops and starts a shared service (POSTERN_TEST_DC_CONTROL).
 */
import { closeSync, openSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { spawnChild, type Child } from './children.js';

// ---- control endpoint (test side) ------------------------------------------------------------------------------

/** Services test/run.ts lets test processes stop and start. */
export type ControlledService = 'ad2' | 'clamd' | 'spamd' | 'postgres';

function controlBase(): string {
  const base = process.env.POSTERN_TEST_DC_CONTROL;
  if (!base) throw new Error('POSTERN_TEST_DC_CONTROL is not set: run the tests through test/run.ts');
  return base;
}

/**
 * Stops or starts a service shared by every test file through test/run.ts's control endpoint. Test files run
 * concurrently: stopping clamd or spamd makes every other file's scans fail meanwhile. A test that only needs "the
 * daemon went away" should start its own with startClamd()/startSpamd() (about a second each); use this for tests
 * that must stop the shared one, and start it again before the test ends.
 */
export async function controlService(name: ControlledService, action: 'stop' | 'start'): Promise<void> {
  const res = await fetch(`${controlBase()}/${name}/${action}`, { method: 'POST' });
  if (!res.ok) throw new Error(`${action} ${name}: HTTP ${res.status} ${await res.text()}`);
}

/** Whether a shared service is running (GET /NAME/status). */
export async function serviceStatus(name: ControlledService): Promise<{ running: boolean }> {
  const res = await fetch(`${controlBase()}/${name}/status`);
  if (!res.ok) throw new Error(`status ${name}: HTTP ${res.status} ${await res.text()}`);
  return (await res.json()) as { running: boolean };
}

// ---- daemon helpers (harness side) -----------------------------------------------------------------------------

/** A port nothing listens on right now (port 0 probing on host); the daemon binds it a moment later. */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      srv.close(() => (addr && typeof addr === 'object' ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export function tail(text: string, lines: number): string {
  return text.trim().split('\n').slice(-lines).join('\n');
}

export interface DaemonSpec {
  /** For messages, e.g. "clamd". */
  name: string;
  command: string;
  args: string[];
  /** stdout and stderr are appended here. */
  outFile: string;
  env?: NodeJS.ProcessEnv;
  /** Resolves true once the daemon answers. Polled every 100 ms. */
  ready: () => Promise<boolean>;
  readyTimeoutMs: number;
  /** Run before each start (e.g. remove a stale socket file). */
  beforeStart?: () => void;
  /** Lines of these files are shown when the daemon fails to start. */
  logFiles?: string[];
}

export interface Daemon {
  readonly running: boolean;
  readonly pid: number | undefined;
  /** Starts the daemon and waits until it answers; a no-op when it runs. Returns the milliseconds it took. */
  start(): Promise<number>;
  /** SIGTERM to the daemon's process group (prefork children too), SIGKILL after 10 s; a no-op when stopped. */
  stop(): Promise<void>;
}

/**
 * Daemons started by this process. Each is its own process group through test/harness/children.ts, which also kills
 * them on exit and, in a test process, when the test file ends, so none outlives the test run.
 */
const liveGroups = new Set<Child>();

/** Kills every daemon started through superviseDaemon (for a test driver interrupted by a signal). */
export function killAllDaemons(signal: NodeJS.Signals = 'SIGTERM'): void {
  for (const p of liveGroups) void p.kill(signal);
}

/**
 * Runs a daemon in the foreground as the leader of its own process group, so that stop() also reaches the children a
 * preforking daemon (spamd) leaves holding the listening socket, and a Ctrl-C in the terminal does not race the
 * driver's own cleanup.
 */
export function superviseDaemon(spec: DaemonSpec): Daemon {
  let proc: Child | null = null;
  let exitInfo: string | null = null;
  const isRunning = () => proc !== null && exitInfo === null;

  const logTail = () =>
    [spec.outFile, ...(spec.logFiles ?? [])]
      .map((f) => {
        try {
          return `--- ${f}\n${tail(readFileSync(f, 'utf8'), 20)}`;
        } catch {
          return '';
        }
      })
      .filter(Boolean)
      .join('\n');

  const stop = async (): Promise<void> => {
    const p = proc;
    if (!p || !isRunning()) return;
    // SIGTERM to the group, SIGKILL after 10 s; then SIGKILL again so no child of the leader lingers on the port.
    await p.stop(10_000);
  };

  const start = async (): Promise<number> => {
    if (isRunning()) return 0;
    const t0 = Date.now();
    spec.beforeStart?.();
    const fd = openSync(spec.outFile, 'a');
    const child = spawnChild(spec.command, spec.args, { name: spec.name, stdio: ['ignore', fd, fd], env: spec.env ?? process.env });
    closeSync(fd);
    proc = child;
    exitInfo = null;
    liveGroups.add(child);
    void child.exited.then(({ code, signal }) => {
      exitInfo = child.error ? child.error.message : `exit ${code ?? signal}`;
      liveGroups.delete(child);
    });
    const deadline = Date.now() + spec.readyTimeoutMs;
    for (;;) {
      if (exitInfo) throw new Error(`${spec.name} stopped during start (${exitInfo}):\n${logTail()}`);
      if (await spec.ready().catch(() => false)) break;
      if (Date.now() > deadline) {
        await stop();
        throw new Error(`${spec.name}: not answering within ${spec.readyTimeoutMs} ms:\n${logTail()}`);
      }
      await sleep(100);
    }
    return Date.now() - t0;
  };

  return {
    get running() {
      return isRunning();
    },
    get pid() {
      return proc?.pid;
    },
    start,
    stop,
  };
}
