/**
 * Postfix from Debian, for the SMTP benchmark: its own instance with its own configuration directory in a temp dir
 * (`postfix -c DIR start`), listening on a loopback port, delivering with virtual(8) into one Maildir. No filters,
 * no postscreen: smtpd straight on the port, as a small site runs it. The system Postfix (if any) is not touched.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureDebianPackages } from '../harness/packages.ts';

export interface Postfix {
  port: number;
  /** The Maildir new/ directory the recipient's mail lands in. */
  newDir: string;
  /** Pids of every process of this instance (master and its children). */
  pids(): number[];
  destroy(): Promise<void>;
}

/** smtp-source ships with Debian's postfix package. */
export const POSTFIX_PACKAGES = [
  { binary: 'postfix', package: 'postfix' },
  { binary: 'smtp-source', package: 'postfix' },
];

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

function uidOf(user: string): { uid: number; gid: number } {
  const uid = Number(execFileSync('id', ['-u', user], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', user], { encoding: 'utf8' }).trim());
  return { uid, gid };
}

/**
 * Starts Postfix with `recipient` (user@domain) as its one virtual mailbox. Needs root (Postfix's master runs as
 * root and drops to mail_owner); the mail is owned by `nobody`.
 */
export async function startPostfix(recipient: string): Promise<Postfix> {
  await ensureDebianPackages(POSTFIX_PACKAGES);
  const dir = mkdtempSync(join(tmpdir(), 'postern-bench-postfix-'));
  const conf = join(dir, 'etc');
  const mail = join(dir, 'mail');
  mkdirSync(conf);
  mkdirSync(mail);
  // postfix-script makes the queue's subdirectories, not the queue directory itself.
  mkdirSync(join(dir, 'spool'));
  mkdirSync(join(dir, 'data'));
  chownSync(join(dir, 'data'), uidOf('postfix').uid, uidOf('postfix').gid);
  const owner = uidOf('nobody');
  chownSync(mail, owner.uid, owner.gid);
  // Postfix refuses a queue directory that other users can write to; mkdtemp makes 0700, and the tree must be
  // reachable by the postfix user.
  execFileSync('chmod', ['755', dir]);
  const port = await freePort();
  const [, domain] = recipient.split('@');
  writeFileSync(join(conf, 'vmailbox'), `${recipient} bench/Maildir/\n`);
  writeFileSync(
    join(conf, 'main.cf'),
    [
      'compatibility_level = 3.6',
      `queue_directory = ${join(dir, 'spool')}`,
      `data_directory = ${join(dir, 'data')}`,
      'command_directory = /usr/sbin',
      'daemon_directory = /usr/lib/postfix/sbin',
      'meta_directory = /etc/postfix',
      'shlib_directory = /usr/lib/postfix',
      'mail_owner = postfix',
      'setgid_group = postdrop',
      `maillog_file = ${join(dir, 'maillog')}`,
      `maillog_file_prefixes = ${dir}`,
      'inet_interfaces = 127.0.0.1',
      'inet_protocols = ipv4',
      'myhostname = postfix-bench.example.net',
      'mydestination =',
      'mynetworks = 127.0.0.0/8',
      'alias_maps =',
      'alias_database =',
      'local_recipient_maps =',
      `virtual_mailbox_domains = ${domain}`,
      `virtual_mailbox_base = ${mail}`,
      `virtual_mailbox_maps = texthash:${join(conf, 'vmailbox')}`,
      `virtual_uid_maps = static:${owner.uid}`,
      `virtual_gid_maps = static:${owner.gid}`,
      'virtual_mailbox_limit = 0',
      'smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination',
      'smtpd_banner = $myhostname ESMTP',
      'biff = no',
      '',
    ].join('\n'),
  );
  // Debian's master.cf without chroot (the temp dir is no chroot jail), the smtp listener on our port.
  const master = readFileSync('/etc/postfix/master.cf', 'utf8')
    .split('\n')
    .map((line) => {
      if (/^#|^\s/.test(line) || !line.trim()) return line;
      const f = line.split(/\s+/);
      if (f[0] === 'smtp' && f[1] === 'inet') f[0] = `127.0.0.1:${port}`;
      if (f.length >= 8) f[4] = 'n';
      return f.join(' ');
    })
    .join('\n');
  writeFileSync(join(conf, 'master.cf'), master);
  // Postfix writes its fatal errors to syslog (none here) and to maillog_file once it has read the config.
  const r = spawnSync('postfix', ['-c', conf, 'start'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`postfix start failed (exit ${r.status}): ${r.stdout}${r.stderr}\n${safeRead(join(dir, 'maillog'))}`);
  const pidFile = join(dir, 'spool', 'pid', 'master.pid');
  const deadline = Date.now() + 15_000;
  let masterPid = 0;
  while (Date.now() < deadline) {
    masterPid = Number(safeRead(pidFile).trim()) || 0;
    if (masterPid && (await answers(port))) break;
    await new Promise((res) => setTimeout(res, 100));
  }
  if (!masterPid) throw new Error(`postfix did not start:\n${safeRead(join(dir, 'maillog'))}`);
  const pids = () => [masterPid, ...childrenOf(masterPid)];
  return {
    port,
    newDir: join(mail, 'bench', 'Maildir', 'new'),
    pids,
    async destroy() {
      spawnSync('postfix', ['-c', conf, 'stop'], { encoding: 'utf8' });
      const until = Date.now() + 10_000;
      while (Date.now() < until && alive(masterPid)) await new Promise((res) => setTimeout(res, 100));
      for (const pid of pids()) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function safeRead(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Direct and indirect children, from /proc (Postfix's master forks smtpd, cleanup, qmgr, virtual …). */
export function childrenOf(pid: number): number[] {
  const out = spawnSync('ps', ['-e', '-o', 'pid=,ppid='], { encoding: 'utf8' }).stdout;
  const byParent = new Map<number, number[]>();
  for (const line of out.split('\n')) {
    const [p, pp] = line.trim().split(/\s+/).map(Number);
    if (!p) continue;
    byParent.set(pp, [...(byParent.get(pp) ?? []), p]);
  }
  const all: number[] = [];
  const walk = (p: number) => {
    for (const c of byParent.get(p) ?? []) {
      all.push(c);
      walk(c);
    }
  };
  walk(pid);
  return all;
}

async function answers(port: number): Promise<boolean> {
  const { connect } = await import('node:net');
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('data', (d) => {
      s.destroy();
      resolve(d.toString().startsWith('220'));
    });
    s.once('error', () => resolve(false));
    setTimeout(() => {
      s.destroy();
      resolve(false);
    }, 1000);
  });
}
