/**
 * A throw-away PostgreSQL for the tests of the postgres state backend (issue 16): `initdb` into a temp dir, then the
 * `postgres` server in the foreground as a child in its own process group (test/harness/children.ts), listening on
 * one loopback address at a free port and on a Unix socket in the temp dir. Nothing else can reach it: the
 * pg_hba.conf written here allows only the socket (trust, for the harness itself) and 127.0.0.0/8 / ::1 with a
 * password (scram-sha-256), and listen_addresses is the one loopback address.
 *
 * PostgreSQL refuses to run as root: as root the dir is handed to the `postgres` user the Debian package creates and
 * initdb and the server run as that user (the way spamd runs its children as nobody).
 *
 * stop() is a fast shutdown (SIGINT: every session is terminated with 57P01, uncommitted transactions roll back,
 * a checkpoint is written): "PostgreSQL went away" and, with start(), "a restart that drops every connection".
 * crash() is SIGKILL to the whole group (no checkpoint: the next start() runs crash recovery from the WAL): what an
 * OOM kill or a power cut does to the server process.
 */
import { spawnSync } from 'node:child_process';
import { chownSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { spawnChild, type Child } from './children.js';
import { freePort, sleep, tail } from './control.js';

/** Major versions looked for, newest first (Debian 12 ships 15; the backend needs 15+). */
const MAJORS = [17, 16, 15];

/** The directory of the PostgreSQL server programs (initdb, postgres), or null when none is installed. */
export function findPostgresBin(): string | null {
  for (const v of MAJORS) {
    const dir = `/usr/lib/postgresql/${v}/bin`;
    if (existsSync(join(dir, 'postgres')) && existsSync(join(dir, 'initdb'))) return dir;
  }
  return null;
}

export interface StartPostgresOptions {
  /** Directory for the instance; default a new temp dir (removed by destroy()). */
  dir?: string;
  /** Loopback address to listen on; default 127.0.0.1. */
  host?: string;
  /** Extra `-c name=value` server settings. */
  settings?: Record<string, string>;
  readyTimeoutMs?: number;
  log?: (msg: string) => void;
}

export interface Postgres {
  dir: string;
  host: string;
  port: number;
  /** The superuser the harness creates (it owns every test database). */
  user: string;
  password: string;
  /** postgres://user:password@host:port/postgres: the maintenance database; tests make their own (pg-database.ts). */
  url: string;
  /** Directory of the Unix socket (.s.PGSQL.<port>). */
  socketDir: string;
  /** The server's log (logging_collector off: stderr goes here). */
  logFile: string;
  timings: { initdbMs: number; startMs: number };
  readonly running: boolean;
  /** Fast shutdown; idempotent. */
  stop(): Promise<void>;
  /** SIGKILL to the server and its backends (no shutdown checkpoint); idempotent. */
  crash(): Promise<void>;
  /** Starts it again on the same port and data and waits until it answers; idempotent. */
  start(): Promise<void>;
  /** stop() and remove the dir (when the harness made it). */
  destroy(): Promise<void>;
}

/** uid/gid of a user from the passwd database, or null. */
function lookupUser(name: string): { uid: number; gid: number } | null {
  const u = spawnSync('id', ['-u', name], { encoding: 'utf8' });
  const g = spawnSync('id', ['-g', name], { encoding: 'utf8' });
  if (u.status !== 0 || g.status !== 0) return null;
  return { uid: Number(u.stdout.trim()), gid: Number(g.stdout.trim()) };
}

/** Every live instance of this process, for a driver interrupted by a signal. */
const live = new Set<Child>();

/** Kills every PostgreSQL this process started (SIGKILL to each group). */
export function killAllPostgres(): void {
  for (const c of live) void c.kill('SIGKILL');
}

export async function startPostgres(opts: StartPostgresOptions = {}): Promise<Postgres> {
  const bin = findPostgresBin();
  if (!bin) {
    throw new Error(
      `PostgreSQL ${MAJORS.at(-1)}+ not found in /usr/lib/postgresql/*/bin (Debian package postgresql): ` +
        'run ensureDebianPackages(POSTGRES_PACKAGES) first',
    );
  }
  const created = opts.dir === undefined;
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'postern-pg-'));
  const log = opts.log ?? (() => {});
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  let runAs: { uid: number; gid: number } | undefined;
  try {
    if (isRoot) {
      runAs = lookupUser('postgres') ?? undefined;
      if (!runAs) throw new Error('PostgreSQL cannot run as root and there is no "postgres" user (Debian package postgresql creates it)');
      chownSync(dir, runAs.uid, runAs.gid);
    }
    const host = opts.host ?? '127.0.0.1';
    const port = await freePort(host);
    const user = 'postern';
    const password = `pg-${Math.random().toString(36).slice(2)}-test`;
    const data = join(dir, 'data');
    const socketDir = dir;
    const logFile = join(dir, 'postgres.log');
    const pwFile = join(dir, 'pwfile');
    writeFileSync(pwFile, password + '\n', { mode: 0o600 });
    if (runAs) chownSync(pwFile, runAs.uid, runAs.gid);

    const t0 = Date.now();
    // --no-sync: a crash of the machine during a test run loses the test database, which is thrown away anyway.
    // The server itself keeps fsync on (the default): the tests that stop or kill it mid-load rely on what it
    // acknowledged being on disk.
    const init = spawnSync(
      join(bin, 'initdb'),
      ['-D', data, '-U', user, `--pwfile=${pwFile}`, '--auth-local=trust', '--auth-host=scram-sha-256', '-E', 'UTF8', '--locale=C', '--no-sync'],
      { encoding: 'utf8', timeout: 180_000, cwd: dir, ...(runAs ?? {}) },
    );
    rmSync(pwFile, { force: true });
    if (init.status !== 0) throw new Error(`initdb failed (exit ${init.status ?? init.signal}):\n${tail(`${init.stdout}${init.stderr}`, 20)}`);
    // Only the socket and loopback, with a password on TCP (initdb's file also has replication lines we do not want).
    writeFileSync(
      join(data, 'pg_hba.conf'),
      [
        '# written by postern test/harness/postgres.ts',
        'local all all trust',
        'host all all 127.0.0.0/8 scram-sha-256',
        'host all all ::1/128 scram-sha-256',
        '',
      ].join('\n'),
    );
    if (runAs) chownSync(join(data, 'pg_hba.conf'), runAs.uid, runAs.gid);
    const initdbMs = Date.now() - t0;

    const settings: Record<string, string> = {
      listen_addresses: host,
      port: String(port),
      unix_socket_directories: socketDir,
      // Test files each make databases and connection pools; two nodes with pools of 10 plus LISTEN connections.
      max_connections: '200',
      shared_buffers: '32MB',
      // A crashed test must not leave a session holding locks for good.
      idle_in_transaction_session_timeout: '60s',
      log_min_messages: 'warning',
      log_line_prefix: '%m [%p] %d ',
      ...opts.settings,
    };
    const args = ['-D', data, ...Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`])];
    const url = `postgres://${user}:${encodeURIComponent(password)}@${host}:${port}/postgres`;

    let proc: Child | null = null;
    let exitInfo: string | null = null;
    const isRunning = () => proc !== null && exitInfo === null;
    const ready = async (): Promise<boolean> => {
      const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
      c.on('error', () => {});
      try {
        await c.connect();
        await c.query('SELECT 1');
        return true;
      } catch {
        return false;
      } finally {
        await c.end().catch(() => {});
      }
    };
    const waitGone = async (p: Child, signal: NodeJS.Signals, graceMs: number) => {
      // SIGINT/SIGKILL to the postmaster alone: it terminates its backends itself (fast shutdown). The group
      // SIGKILL after the grace period covers a postmaster that hangs, and leaves no backend on the port.
      try {
        process.kill(p.pid, signal);
      } catch {
        /* already gone */
      }
      const gone = await Promise.race([p.exited.then(() => true), sleep(graceMs).then(() => false)]);
      if (!gone) log(`postgres (${dir}) did not stop within ${graceMs} ms after ${signal}: SIGKILL`);
      await p.kill('SIGKILL');
    };
    const stop = async () => {
      if (!proc || !isRunning()) return;
      await waitGone(proc, 'SIGINT', 30_000);
    };
    const crash = async () => {
      if (!proc || !isRunning()) return;
      await proc.kill('SIGKILL');
    };
    const start = async (): Promise<number> => {
      if (isRunning()) return 0;
      const s0 = Date.now();
      // A SIGKILLed postmaster leaves postmaster.pid; PostgreSQL checks the pid and the shared memory segment
      // itself and starts over a stale file, so it is left alone here.
      const fd = openSync(logFile, 'a');
      const child = spawnChild(join(bin, 'postgres'), args, {
        name: `postgres (${dir})`,
        stdio: ['ignore', fd, fd],
        cwd: dir,
        ...(runAs ?? {}),
      });
      closeSync(fd);
      proc = child;
      exitInfo = null;
      live.add(child);
      void child.exited.then(({ code, signal }) => {
        exitInfo = child.error ? child.error.message : `exit ${code ?? signal}`;
        live.delete(child);
      });
      const deadline = Date.now() + (opts.readyTimeoutMs ?? 120_000);
      for (;;) {
        if (exitInfo) throw new Error(`postgres (${dir}) stopped during start (${exitInfo}):\n${logTail()}`);
        if (await ready()) break;
        if (Date.now() > deadline) {
          await crash();
          throw new Error(`postgres (${dir}): not answering within ${opts.readyTimeoutMs ?? 120_000} ms:\n${logTail()}`);
        }
        await sleep(100);
      }
      return Date.now() - s0;
    };
    const logTail = () => {
      try {
        return `--- ${logFile}\n${tail(readFileSync(logFile, 'utf8'), 20)}`;
      } catch {
        return '';
      }
    };
    mkdirSync(socketDir, { recursive: true });
    const startMs = await start();
    log(`postgres: ${host}:${port} (initdb ${initdbMs} ms, start ${startMs} ms, ${dir})`);
    return {
      dir,
      host,
      port,
      user,
      password,
      url,
      socketDir,
      logFile,
      timings: { initdbMs, startMs },
      get running() {
        return isRunning();
      },
      stop,
      crash,
      start: async () => {
        await start();
      },
      async destroy() {
        await stop();
        if (created) rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    if (created) rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

/** The environment test/run.ts gives the tests for an instance (see the list at the top of test/run.ts). */
export function postgresEnv(p: Postgres): Record<string, string> {
  return {
    POSTERN_TEST_PG_URL: p.url,
    POSTERN_TEST_PG_HOST: p.host,
    POSTERN_TEST_PG_PORT: String(p.port),
    POSTERN_TEST_PG_USER: p.user,
    POSTERN_TEST_PG_PASSWORD: p.password,
    POSTERN_TEST_PG_DIR: p.dir,
  };
}
