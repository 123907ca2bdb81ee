/**
 * A throw-away spamd for the integration tests (DESIGN.md §5) on 127.0.0.1 at a free port, with its own home and
 * Bayes database in a temp dir.
 *
 * - Rules: there is no network for sa-update; without sa-update data SpamAssassin falls back to the rules the Debian
 *   package ships in /usr/share/spamassassin (its DEF_RULES_DIR), plugins loaded by the .pre files in
 *   /etc/spamassassin. That rule set knows GTUBE (score 1000).
 * - -L (local tests only): no DNS blocklist or URIBL lookups, which would only time out here.
 * - -x: no per-user configuration files; Bayes settings come from --cf lines (bayes_path in the temp dir, auto-learn
 *   off so scores do not drift while tests run).
 * - -l (--allow-tell): TELL is refused without it.
 * - As root, spamd wants a user to run its children as: --username=nobody, and the Bayes and home dirs are handed to
 *   nobody (the temp dir itself is made traversable).
 * Startup is about a second (the rules are parsed once in the parent, children fork from it).
 */
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Spamc } from '../../src/filters/spamc.js';
import { freePort, superviseDaemon } from './control.js';
import { findBinary } from './packages.js';

/** The GTUBE test string (SpamAssassin's "Generic Test for Unsolicited Bulk Email"): scores 1000. */
export const GTUBE = 'XJS*C4JDBQADN1.NSBN3*2IDNEN*' + 'GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X';

export interface StartSpamdOptions {
  /** Directory for the instance; default a new temp dir (removed by destroy()). */
  dir?: string;
  /**
   * bayes_min_spam_num and bayes_min_ham_num: how many of each must be learned before Bayes scores anything.
   * Default SpamAssassin's (200), so learning in one test does not change the scores another test sees; a test that
   * wants to see learning take effect starts its own spamd with 1.
   */
  bayesMinNum?: number;
  readyTimeoutMs?: number;
  log?: (msg: string) => void;
}

export interface Spamd {
  dir: string;
  host: string;
  port: number;
  /** spamd's log (-s FILE). */
  logFile: string;
  /** The Bayes database files start with this path. */
  bayesPath: string;
  /** Milliseconds of the first start until PING answers. */
  timings: { startMs: number };
  readonly running: boolean;
  /** Stops spamd and its children ("spamd went away"); idempotent. */
  stop(): Promise<void>;
  /** Starts it again on the same port and waits for PONG; idempotent. */
  start(): Promise<void>;
  /** stop() and remove the dir. */
  destroy(): Promise<void>;
}

/** uid/gid of a user from the passwd database (`id`), or null. */
function lookupUser(name: string): { uid: number; gid: number } | null {
  const u = spawnSync('id', ['-u', name], { encoding: 'utf8' });
  const g = spawnSync('id', ['-g', name], { encoding: 'utf8' });
  if (u.status !== 0 || g.status !== 0) return null;
  return { uid: Number(u.stdout.trim()), gid: Number(g.stdout.trim()) };
}

export async function startSpamd(opts: StartSpamdOptions = {}): Promise<Spamd> {
  const spamd = findBinary('spamd');
  if (!spamd) throw new Error('spamd not found (Debian package spamd): run ensureDebianPackages(FILTER_PACKAGES) first');
  const created = opts.dir === undefined;
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'postern-spamd-'));
  const log = opts.log ?? (() => {});
  try {
    const home = join(dir, 'home');
    const bayesDir = join(dir, 'bayes');
    mkdirSync(home, { recursive: true });
    mkdirSync(bayesDir, { recursive: true });
    const runAs: string[] = [];
    const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
    if (isRoot) {
      const nobody = lookupUser('nobody');
      if (!nobody) throw new Error('spamd as root needs a user to run as, and there is no "nobody"');
      chmodSync(dir, 0o755);
      chownSync(home, nobody.uid, nobody.gid);
      chownSync(bayesDir, nobody.uid, nobody.gid);
      runAs.push('--username=nobody');
    }
    const host = '127.0.0.1';
    const port = await freePort(host);
    const logFile = join(dir, 'spamd.log');
    const bayesPath = join(bayesDir, 'bayes');
    const minNum = opts.bayesMinNum ?? 200;
    const cf = [
      'use_bayes 1',
      'bayes_auto_learn 0',
      `bayes_path ${bayesPath}`,
      `bayes_min_spam_num ${minNum}`,
      `bayes_min_ham_num ${minNum}`,
    ];
    const client = new Spamc({ host, port, timeoutMs: 2000 });
    const daemon = superviseDaemon({
      name: `spamd (${dir})`,
      command: spamd,
      args: [
        `--listen=${host}:${port}`,
        `--allowed-ips=${host}`,
        ...runAs,
        '--nouser-config',
        '--local',
        '--allow-tell',
        `--helper-home-dir=${home}`,
        `--pidfile=${join(dir, 'spamd.pid')}`,
        `--syslog=${logFile}`,
        '--max-children=4',
        '--min-children=1',
        ...cf.map((line) => `--cf=${line}`),
      ],
      outFile: join(dir, 'spamd.out'),
      logFiles: [logFile],
      // Whatever SpamAssassin would keep in ~/.spamassassin stays in the temp dir, not in the caller's home.
      env: { ...process.env, HOME: home },
      ready: () => client.ping().then(() => true),
      readyTimeoutMs: opts.readyTimeoutMs ?? 60_000,
    });
    const startMs = await daemon.start();
    log(`spamd: ${host}:${port} (start ${startMs} ms)`);
    return {
      dir,
      host,
      port,
      logFile,
      bayesPath,
      timings: { startMs },
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
