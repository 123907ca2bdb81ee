/**
 * A throw-away Dovecot (Debian's dovecot-imapd) for the IMAP benchmark: its own dovecot.conf in a temp dir (base_dir,
 * state_dir and logs there too, nothing from /etc/dovecot), IMAP only on 127.0.0.1:<port>, no TLS and plaintext LOGIN
 * allowed, users from a passwd-file with one password, and a static userdb pointing at an existing Maildir root laid
 * out as postern's store lays it out (`<root>/users/<login>/Maildir`). Runs in the foreground (`dovecot -F -c conf`);
 * destroy() stops it and removes the temp dir (never the Maildir).
 *
 * Login processes use Dovecot's documented "high-performance" mode (service_count = 0, a couple of long-lived
 * imap-login processes) so that connection set-up does not fork per client, unless `processModel: 'default'` asks
 * for Debian's default (a login process per connection); the imap service keeps its default of one process per
 * connection (client_limit = 1), as Debian ships it.
 */
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, superviseDaemon } from '../harness/control.ts';
import { greets } from '../harness/dovecot.ts';

export interface DovecotOptions {
  /** Directory holding `users/<login>/Maildir`. */
  mailRoot: string;
  /** Logins (lower-case, as postern's store names their directories) that may log in with `password`. */
  users: string[];
  password: string;
  /** Most connections expected at once (process and client limits are set from it). */
  maxConnections?: number;
  /**
   * Dovecot's login process model (https://doc.dovecot.org/configuration_manual/service_configuration/): `default`
   * as Debian ships it (service_count = 1: a fresh imap-login process per connection), or `high-performance`
   * (service_count = 0: a couple of long-lived imap-login processes, each serving many connections). Default
   * high-performance.
   */
  processModel?: 'default' | 'high-performance';
}

export interface Dovecot {
  port: number;
  /** The master process. */
  pid: number;
  dir: string;
  /** PIDs of the per-connection `imap` processes (children of the master). */
  imapPids(): number[];
  /** PIDs of every process of this instance (master and all its children). */
  allPids(): number[];
  destroy(): Promise<void>;
}

/** Children of `pid` from /proc (ps would do too; this needs no parsing of columns). */
function childrenOf(pid: number): { pid: number; comm: string }[] {
  const out: { pid: number; comm: string }[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const close = stat.lastIndexOf(')');
      const comm = stat.slice(stat.indexOf('(') + 1, close);
      const ppid = Number(stat.slice(close + 2).split(' ')[1]);
      if (ppid === pid) out.push({ pid: Number(name), comm });
    } catch {
      // the process went away
    }
  }
  return out;
}

export async function startDovecot(opts: DovecotOptions): Promise<Dovecot> {
  const dir = mkdtempSync(join(tmpdir(), 'postern-bench-dovecot-'));
  // imap-login runs as dovenull, chrooted under base_dir/login: the temp dir must be traversable.
  chmodSync(dir, 0o755);
  const baseDir = join(dir, 'run');
  const stateDir = join(dir, 'state');
  mkdirSync(baseDir, { mode: 0o755 });
  mkdirSync(stateDir, { mode: 0o755 });
  const port = await freePort();
  const max = opts.maxConnections ?? 1000;
  const limit = max + 100;
  const passwd = join(dir, 'passwd');
  writeFileSync(passwd, opts.users.map((u) => `${u}:{PLAIN}${opts.password}\n`).join(''), { mode: 0o644 });
  const st = statSync(join(opts.mailRoot, 'users')); // the mail files' owner (Dovecot refuses uid 0)
  const logFile = join(dir, 'dovecot.log');
  const conf = join(dir, 'dovecot.conf');
  writeFileSync(
    conf,
    `# postern bench: throw-away Dovecot
protocols = imap
listen = 127.0.0.1
base_dir = ${baseDir}
state_dir = ${stateDir}
log_path = ${logFile}
info_log_path = ${logFile}
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = 0
first_valid_gid = 0
mail_location = maildir:${opts.mailRoot}/users/%Ln/Maildir
default_process_limit = ${limit}
default_client_limit = ${limit * 2}
default_vsz_limit = 1G
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%Ln ${passwd}
}
userdb {
  driver = static
  args = uid=${st.uid} gid=${st.gid} home=${opts.mailRoot}/users/%Ln
}
protocol imap {
  mail_max_userip_connections = ${limit}
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = ${port}
  }
  inet_listener imaps {
    port = 0
  }
${
    (opts.processModel ?? 'high-performance') === 'high-performance'
      ? `  service_count = 0\n  process_min_avail = 2\n  client_limit = ${limit}\n`
      : '  service_count = 1\n'
  }}
service imap {
  process_limit = ${limit}
}
service anvil {
  client_limit = ${limit * 3}
}
service auth {
  client_limit = ${limit * 3}
}
`,
  );
  // The harness's supervision: dovecot -F leads its own process group (its imap and login children in it), stopped
  // with SIGTERM then SIGKILL, and killed with the bench process if that ends first.
  const daemon = superviseDaemon({
    name: 'dovecot',
    command: 'dovecot',
    args: ['-F', '-c', conf],
    outFile: join(dir, 'dovecot.out'),
    logFiles: [logFile],
    readyTimeoutMs: 15_000,
    ready: () => greets(port),
  });
  try {
    await daemon.start();
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const pid = daemon.pid!;
  const all = (): number[] => {
    const seen: number[] = [pid];
    for (let i = 0; i < seen.length; i++) for (const c of childrenOf(seen[i]!)) seen.push(c.pid);
    return seen;
  };
  return {
    port,
    pid,
    dir,
    imapPids: () => childrenOf(pid).filter((c) => c.comm === 'imap').map((c) => c.pid),
    allPids: all,
    async destroy() {
      await daemon.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Resident and proportional set size of one process in KiB (0 when it is gone). */
export function memoryOf(pid: number): { rss: number; pss: number } {
  try {
    const text = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
    const rss = Number(/^Rss:\s+(\d+)/m.exec(text)?.[1] ?? 0);
    const pss = Number(/^Pss:\s+(\d+)/m.exec(text)?.[1] ?? 0);
    return { rss, pss };
  } catch {
    try {
      const status = readFileSync(`/proc/${pid}/status`, 'utf8');
      const rss = Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1] ?? 0);
      return { rss, pss: rss };
    } catch {
      return { rss: 0, pss: 0 };
    }
  }
}

export function memoryOfAll(pids: number[]): { rss: number; pss: number } {
  let rss = 0;
  let pss = 0;
  for (const p of pids) {
    const m = memoryOf(p);
    rss += m.rss;
    pss += m.pss;
  }
  return { rss, pss };
}
