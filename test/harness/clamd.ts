/**
 * A throw-away clamd for the integration tests (DESIGN.md §5): its own temp dir, a signature database written at run
 * time (there is no network for freshclam), a Unix socket in the dir and a TCP socket on 127.0.0.1 at a free port.
 *
 * The database holds the EICAR test file twice, both under the name Eicar-Test-Signature (clamd reports it as
 * "Eicar-Test-Signature.UNOFFICIAL", as for every signature outside the official databases):
 * - eicar.hdb, made with `sigtool --md5`: the MD5 of the exact 68-byte file, which matches a file clamd extracts
 *   from an attachment or an archive;
 * - eicar.ndb, a body signature (the EICAR bytes in hex, any offset), which also matches the EICAR string where it
 *   is not a file of its own: in the plain-text body of a message.
 * Loading two signatures takes clamd about a second.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, superviseDaemon } from './control.js';
import { findBinary } from './packages.js';

/**
 * The EICAR anti-virus test file (eicar.org): harmless, and detected by every scanner. Kept in two halves so that
 * this source file is not itself reported by a scanner on a developer's machine.
 */
export const EICAR = 'X5O!P%@AP[4\\PZX54(P^)7CC)7}$' + 'EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*';
/** The name the harness database gives it. */
export const EICAR_SIGNATURE = 'Eicar-Test-Signature';

export interface StartClamdOptions {
  /** Directory for the instance; default a new temp dir (removed by destroy()). */
  dir?: string;
  /** clamd StreamMaxLength; default 50M. */
  streamMaxLength?: string;
  readyTimeoutMs?: number;
  log?: (msg: string) => void;
}

export interface Clamd {
  dir: string;
  /** LocalSocket path. */
  socket: string;
  host: string;
  /** TCPSocket. */
  port: number;
  /** clamd's LogFile. */
  logFile: string;
  /** Milliseconds to write the database and for the first start until PONG. */
  timings: { setupMs: number; startMs: number };
  readonly running: boolean;
  /** Stops clamd ("clamd went away"); idempotent. */
  stop(): Promise<void>;
  /** Starts it again on the same socket and port and waits for PONG; idempotent. */
  start(): Promise<void>;
  /** stop() and remove the dir. */
  destroy(): Promise<void>;
}

/** Sends a clamd command in the null-terminated form ("zPING\0") and returns the reply. */
export function clamdCommand(target: { socket: string } | { host: string; port: number }, command: string, timeoutMs = 2000): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = 'socket' in target ? connect({ path: target.socket }) : connect({ host: target.host, port: target.port });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`clamd ${command}: timeout`));
    }, timeoutMs);
    sock.on('connect', () => sock.write(`z${command}\0`));
    sock.on('data', (d: Buffer) => chunks.push(d));
    sock.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    sock.on('end', () => {
      clearTimeout(timer);
      sock.destroy();
      resolve(Buffer.concat(chunks).toString('latin1').replace(/\0$/, ''));
    });
  });
}

function writeDatabase(dbDir: string, workDir: string): void {
  const sigtool = findBinary('sigtool');
  if (!sigtool) throw new Error('sigtool not found (Debian package clamav): run ensureDebianPackages(FILTER_PACKAGES) first');
  mkdirSync(dbDir, { recursive: true });
  // sigtool names the signature after the file: write EICAR to a file called Eicar-Test-Signature.
  writeFileSync(join(workDir, EICAR_SIGNATURE), EICAR);
  const r = spawnSync(sigtool, ['--md5', EICAR_SIGNATURE], { cwd: workDir, encoding: 'utf8' });
  if (r.status !== 0 || !/^[0-9a-f]{32}:68:/.test(r.stdout)) {
    throw new Error(`sigtool --md5 failed (exit ${r.status ?? r.signal}): ${r.stdout}${r.stderr}`);
  }
  rmSync(join(workDir, EICAR_SIGNATURE));
  writeFileSync(join(dbDir, 'eicar.hdb'), r.stdout.trim() + '\n');
  // .ndb: Name:TargetType:Offset:HexSignature; target 0 = any file, offset * = anywhere.
  writeFileSync(join(dbDir, 'eicar.ndb'), `${EICAR_SIGNATURE}:0:*:${Buffer.from(EICAR, 'latin1').toString('hex')}\n`);
}

export async function startClamd(opts: StartClamdOptions = {}): Promise<Clamd> {
  const clamd = findBinary('clamd');
  if (!clamd) throw new Error('clamd not found (Debian package clamav-daemon): run ensureDebianPackages(FILTER_PACKAGES) first');
  const created = opts.dir === undefined;
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'postern-clamd-'));
  const log = opts.log ?? (() => {});
  try {
    const t0 = Date.now();
    const dbDir = join(dir, 'db');
    const tmp = join(dir, 'tmp');
    mkdirSync(tmp, { recursive: true });
    writeDatabase(dbDir, dir);
    const socket = join(dir, 'clamd.sock');
    const host = '127.0.0.1';
    const port = await freePort(host);
    const logFile = join(dir, 'clamd.log');
    const conf = join(dir, 'clamd.conf');
    writeFileSync(
      conf,
      [
        '# written by postern test/harness/clamd.ts',
        'Foreground yes',
        `DatabaseDirectory ${dbDir}`,
        `LocalSocket ${socket}`,
        'LocalSocketMode 666',
        `TCPSocket ${port}`,
        `TCPAddr ${host}`,
        `StreamMaxLength ${opts.streamMaxLength ?? '50M'}`,
        'MaxThreads 8',
        `TemporaryDirectory ${tmp}`,
        `LogFile ${logFile}`,
        'LogTime yes',
        `PidFile ${join(dir, 'clamd.pid')}`,
        // No freshclam, no database changes: the self check only costs time.
        'SelfCheck 0',
        '',
      ].join('\n'),
    );
    const setupMs = Date.now() - t0;
    const ping = async () =>
      (await clamdCommand({ socket }, 'PING', 1000)) === 'PONG' && (await clamdCommand({ host, port }, 'PING', 1000)) === 'PONG';
    const daemon = superviseDaemon({
      name: `clamd (${dir})`,
      command: clamd,
      args: ['-c', conf],
      outFile: join(dir, 'clamd.out'),
      logFiles: [logFile],
      ready: ping,
      readyTimeoutMs: opts.readyTimeoutMs ?? 60_000,
      // A socket file left by a killed clamd: clamd removes stale ones itself, this only makes sure of it.
      beforeStart: () => rmSync(socket, { force: true }),
    });
    const startMs = await daemon.start();
    log(`clamd: ${socket} and ${host}:${port} (setup ${setupMs} ms, start ${startMs} ms)`);
    return {
      dir,
      socket,
      host,
      port,
      logFile,
      timings: { setupMs, startMs },
      get running() {
        return daemon.running;
      },
      stop: () => daemon.stop(),
      start: async () => {
        await daemon.start();
      },
      async destroy() {
        await daemon.stop();
        if (created) rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    if (created) rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}
