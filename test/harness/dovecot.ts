/**
 * A real Dovecot (Debian's dovecot-imapd) for tests that hand a Maildir back and forth between it and postern.
 *
 * Everything lives in a temp dir: dovecot.conf, base_dir (sockets, the login chroot), state_dir, the passwd-file
 * and dovecot.log; nothing is read from /etc/dovecot and no system service is involved. IMAP only, on 127.0.0.1
 * at a free port (Dovecot cannot listen on port 0 and tell us), no TLS, plaintext LOGIN / AUTHENTICATE PLAIN.
 * Users come from a passwd-file (passdb and userdb), their Maildir is postern's layout,
 * `<mailRoot>/users/<login>/Maildir`, and the namespace separator is postern's '/'.
 *
 * Mail is accessed as the current user; as root (Dovecot refuses UID 0 for mail) as nobody: then start()
 * first hands the Maildir tree to nobody, since postern, running as root, writes its files 0600 (the parents of
 * mailRoot must let nobody through).
 *
 * The master runs in the foreground (`dovecot -F -c CONF`) as the leader of its own process group
 * (superviseDaemon), killed with all its children by stop(), and on process exit.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { freePort, superviseDaemon, type Daemon } from './control.ts';
import { findBinary } from './packages.ts';

export interface DovecotUser {
  login: string;
  password: string;
}

export interface TestDovecot {
  readonly port: number;
  readonly dir: string;
  readonly running: boolean;
  /** Starts Dovecot (again) and waits for its greeting. */
  start(): Promise<void>;
  /** Stops Dovecot and every child process; its files stay in the Maildir. */
  stop(): Promise<void>;
  /** stop() and remove the temp dir (never the Maildir). */
  destroy(): Promise<void>;
  /** The end of dovecot.log, for assertion messages. */
  log(lines?: number): string;
}

const NOBODY = { uid: 65534, gid: 65534 };

export async function createDovecot(opts: { mailRoot: string; users: DovecotUser[] }): Promise<TestDovecot> {
  const dovecot = findBinary('dovecot');
  if (!dovecot) throw new Error('dovecot not found: install dovecot-imapd (DOVECOT_PACKAGES)');
  const dir = mkdtempSync(join(tmpdir(), 'postern-dovecot-'));
  // imap-login runs as dovenull chrooted under base_dir/login, and mail as nobody: the path must be traversable.
  chmodSync(dir, 0o755);
  const baseDir = join(dir, 'run');
  const stateDir = join(dir, 'state');
  mkdirSync(baseDir, { mode: 0o755 });
  mkdirSync(stateDir, { mode: 0o755 });
  const me = userInfo();
  const mail = me.uid === 0 ? NOBODY : { uid: me.uid, gid: me.gid };
  const port = await freePort();
  const passwd = join(dir, 'passwd');
  // passwd-file: user:password:uid:gid:gecos:home
  writeFileSync(
    passwd,
    opts.users.map((u) => `${u.login.toLowerCase()}:{PLAIN}${u.password}:${mail.uid}:${mail.gid}::${join(opts.mailRoot, 'users', u.login.toLowerCase())}\n`).join(''),
    { mode: 0o644 },
  );
  const logFile = join(dir, 'dovecot.log');
  const conf = join(dir, 'dovecot.conf');
  writeFileSync(
    conf,
    `# postern test: a throw-away Dovecot (test/harness/dovecot.ts)
protocols = imap
listen = 127.0.0.1
base_dir = ${baseDir}
state_dir = ${stateDir}
log_path = ${logFile}
info_log_path = ${logFile}
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = ${Math.min(mail.uid, 1)}
first_valid_gid = 0
mail_location = maildir:${opts.mailRoot}/users/%Ln/Maildir
namespace inbox {
  inbox = yes
  separator = /
}
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%Ln ${passwd}
}
userdb {
  driver = passwd-file
  args = username_format=%Ln ${passwd}
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = ${port}
  }
  inet_listener imaps {
    port = 0
  }
}
`,
  );
  const daemon: Daemon = superviseDaemon({
    name: 'dovecot',
    command: dovecot,
    args: ['-F', '-c', conf],
    outFile: join(dir, 'dovecot.out'),
    logFiles: [logFile],
    readyTimeoutMs: 15_000,
    ready: () => greets(port),
  });
  const handOver = () => {
    if (me.uid !== 0) return;
    mkdirSync(join(opts.mailRoot, 'users'), { recursive: true });
    const r = spawnSync('chown', ['-R', `${mail.uid}:${mail.gid}`, opts.mailRoot], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`chown -R ${opts.mailRoot}: ${r.stderr}`);
    // The parents too must let nobody through.
    chmodSync(opts.mailRoot, 0o755);
  };
  return {
    port,
    dir,
    get running() {
      return daemon.running;
    },
    async start() {
      handOver();
      await daemon.start();
    },
    stop: () => daemon.stop(),
    async destroy() {
      await daemon.stop();
      rmSync(dir, { recursive: true, force: true });
    },
    log(lines = 30) {
      try {
        return readFileSync(logFile, 'utf8').trim().split('\n').slice(-lines).join('\n');
      } catch {
        return '(no dovecot.log)';
      }
    },
  };
}

/** True once an IMAP server on 127.0.0.1:port sends its `* OK` greeting (false on refusal or after 2 s). */
export function greets(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(2000, () => done(false));
    s.once('data', (d) => done(d.toString().startsWith('* OK')));
    s.once('error', () => done(false));
  });
}
