/**
 * A throw-away Samba AD DC for the integration tests (DESIGN.md §5): provisioned in a temp dir, listening on one
 * loopback address only, run in the foreground as a child process.
 *
 * Several DCs can run at once on different loopback addresses (127.0.0.1, 127.0.0.2, ...): every path Samba would
 * share between instances (pid file, sockets, logs) is moved into the DC's dir, and `bind interfaces only` with
 * `interfaces = HOST/8` makes each bind only its own address. Only the `ldap` and `kdc` services run (LDAP 389,
 * LDAPS 636, GC 3268/3269, Kerberos 88 and kpasswd 464): no smbd, nmbd, winbindd or DNS.
 *
 * TLS: when `openssl` is available the harness writes its own CA and a server certificate before the first start,
 * with subjectAltName DNS:<hostName>.<realm>, DNS:<realm>, DNS:localhost and IP:<host>, so a client verifies it with
 * `ca: readFileSync(dc.caFile)` alone (no servername, no rejectUnauthorized: false). Without openssl Samba
 * generates its own (CN=<HOSTNAME>.<realm>, no subjectAltName): then pass `servername: dc.tlsServername` too.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { connect } from 'node:net';
import { join } from 'node:path';
import { Change, Attribute, Client } from 'ldapts';
import { spawnChild, type Child } from './children.js';
import { findBinary } from './packages.js';

export interface StartSambaOptions {
  /** Kerberos realm / DNS domain, e.g. CORP.EXAMPLE (base DN DC=corp,DC=example). */
  realm: string;
  /** NetBIOS domain name, e.g. CORP. */
  domain: string;
  adminPassword: string;
  /** Loopback address to listen on; default 127.0.0.1. */
  host?: string;
  /** Directory for the DC; default a new temp dir. A dir that already holds a provisioned DC is started as is. */
  dir?: string;
  /** NetBIOS name of the DC (max 15 chars); default DC. Its FQDN is <hostName>.<realm> in lower case. */
  hostName?: string;
  /** Turn off password complexity, history, minimum and maximum age (default true). */
  relaxPasswordPolicy?: boolean;
  /** How long to wait for LDAPS to accept an Administrator bind; default 60 s. */
  readyTimeoutMs?: number;
  log?: (msg: string) => void;
}

export interface SambaDc {
  host: string;
  realm: string;
  /** NetBIOS domain. */
  domain: string;
  /** e.g. DC=corp,DC=example */
  baseDN: string;
  ldapsUrl: string;
  ldapUrl: string;
  /** CN=Administrator,CN=Users,<baseDN> */
  adminDN: string;
  adminPassword: string;
  dir: string;
  /** A krb5.conf for this realm only, kdc = host. Use with KRB5_CONFIG. */
  krb5Conf: string;
  /** The CA that signed the DC's LDAPS certificate (PEM). */
  caFile?: string;
  /** The DNS name in the certificate: <hostName>.<realm>, lower case. Needed as servername only without openssl. */
  tlsServername: string;
  /** samba's own output (it runs with -i). */
  logFile: string;
  /** Milliseconds spent in samba-tool provision (0 when the dir was already provisioned) and in the first start. */
  timings: { provisionMs: number; startMs: number };
  readonly running: boolean;
  /** Stops the samba process (for "the DC went away" tests); idempotent. */
  stop(): Promise<void>;
  /** Starts the same provisioned DC again and waits until it answers; idempotent. */
  start(): Promise<void>;
  /** stop() and remove the dir. */
  destroy(): Promise<void>;
}

export function realmToBaseDN(realm: string): string {
  return realm
    .toLowerCase()
    .split('.')
    .map((p) => `DC=${p}`)
    .join(',');
}

/**
 * Every live samba / samba-tool child of this process. Each is its own process group (test/harness/children.ts,
 * which also kills them on exit), so no DC outlives the test run.
 */
const live = new Set<Child>();

/**
 * Kills every samba and samba-tool process started by this module (for a test driver interrupted by SIGINT).
 * Pending startSambaDc calls then fail and remove the dirs they created; started DCs still need destroy().
 */
export function killAllSamba(signal: NodeJS.Signals = 'SIGTERM'): void {
  for (const p of live) void p.kill(signal);
}

function runSync(cmd: string, args: string[], logFile?: string): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const out = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  if (logFile) writeFileSync(logFile, `$ ${cmd} ${args.join(' ')}\n${out}\n`, { flag: 'a' });
  if (r.status !== 0) {
    throw new Error(`${cmd} ${args.slice(0, 4).join(' ')} ... failed (exit ${r.status ?? r.signal}):\n${tail(out, 30)}`);
  }
}

function runAsync(cmd: string, args: string[], logFile: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const fd = openSync(logFile, 'a');
    const child = spawnChild(cmd, args, { name: `${cmd} ${args.slice(0, 2).join(' ')}`, stdio: ['ignore', fd, fd] });
    closeSync(fd);
    live.add(child);
    void child.exited.then(({ code, signal }) => {
      live.delete(child);
      if (child.error) reject(child.error);
      else if (code === 0) resolve();
      else reject(new Error(`${cmd} ${args.slice(0, 3).join(' ')} failed (exit ${code ?? signal}):\n${tail(readFileSync(logFile, 'utf8'), 30)}`));
    });
  });
}

function tail(text: string, lines: number): string {
  return text.trim().split('\n').slice(-lines).join('\n');
}

/** True when something accepts TCP connections on host:port (a DC left over from a crashed run, or another one). */
function portInUse(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host, port });
    sock.setTimeout(1000);
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('timeout', () => {
      sock.destroy();
      resolve(false);
    });
    sock.once('error', () => resolve(false));
  });
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** CA + server certificate with an IP subjectAltName, in the files Samba reads by default (private/tls/*.pem). */
function writeTlsCertificate(tlsDir: string, realm: string, fqdn: string, host: string, logFile: string): void {
  mkdirSync(tlsDir, { recursive: true, mode: 0o700 });
  const p = (f: string) => join(tlsDir, f);
  const days = '3650';
  runSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', p('ca.key'), '-out', p('ca.pem'), '-days', days,
    '-subj', `/O=postern tests/CN=postern test CA for ${realm}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], logFile);
  runSync('openssl', ['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', p('key.pem'), '-out', p('cert.csr'),
    '-subj', `/O=postern tests/CN=${fqdn}`], logFile);
  writeFileSync(p('cert.ext'), [
    'basicConstraints=CA:FALSE',
    'keyUsage=critical,digitalSignature,keyEncipherment',
    'extendedKeyUsage=serverAuth',
    `subjectAltName=DNS:${fqdn},DNS:${realm.toLowerCase()},DNS:localhost,IP:${host}`,
    '',
  ].join('\n'));
  runSync('openssl', ['x509', '-req', '-in', p('cert.csr'), '-CA', p('ca.pem'), '-CAkey', p('ca.key'), '-CAcreateserial',
    '-out', p('cert.pem'), '-days', days, '-extfile', p('cert.ext')], logFile);
  // Samba refuses a key file readable by others.
  chmodSync(p('key.pem'), 0o600);
  chmodSync(p('ca.key'), 0o600);
}

function krb5Conf(realm: string, host: string): string {
  const dns = realm.toLowerCase();
  return `# written by postern test/harness/samba.ts
[libdefaults]
	default_realm = ${realm}
	dns_lookup_realm = false
	dns_lookup_kdc = false
	rdns = false
	dns_canonicalize_hostname = false
	ticket_lifetime = 10h
	forwardable = true

[realms]
	${realm} = {
		kdc = ${host}
		admin_server = ${host}
		kpasswd_server = ${host}
		default_domain = ${dns}
	}

[domain_realm]
	.${dns} = ${realm}
	${dns} = ${realm}
`;
}

/** Binds as the administrator over LDAPS; true on success. */
async function canBind(url: string, dn: string, password: string): Promise<boolean> {
  const client = new Client({ url, connectTimeout: 2000, timeout: 5000, tlsOptions: { rejectUnauthorized: false } });
  try {
    await client.bind(dn, password);
    return true;
  } catch {
    return false;
  } finally {
    await client.unbind().catch(() => {});
  }
}

export async function startSambaDc(opts: StartSambaOptions): Promise<SambaDc> {
  const created = opts.dir === undefined;
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), `postern-samba-${opts.realm.toLowerCase()}-`));
  try {
    return await startIn(dir, opts);
  } catch (err) {
    if (created) {
      killDir(dir);
      rmSync(dir, { recursive: true, force: true });
    }
    throw err;
  }
}

/** Kills a samba still running from dir (one that answered too late). */
function killDir(dir: string): void {
  for (const p of live) if (p.process.spawnargs.some((a) => a.startsWith(dir))) void p.kill('SIGKILL');
}

async function startIn(dir: string, opts: StartSambaOptions): Promise<SambaDc> {
  const log = opts.log ?? (() => {});
  const host = opts.host ?? '127.0.0.1';
  if (!/^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host)) throw new Error(`startSambaDc: ${host} is not a loopback IPv4 address`);
  const realm = opts.realm.toUpperCase();
  const domain = opts.domain.toUpperCase();
  const hostName = (opts.hostName ?? 'DC').toUpperCase();
  const fqdn = `${hostName}.${realm}`.toLowerCase();
  const baseDN = realmToBaseDN(realm);
  mkdirSync(dir, { recursive: true });
  const conf = join(dir, 'etc', 'smb.conf');
  const logFile = join(dir, 'samba.log');
  const setupLog = join(dir, 'setup.log');
  const tlsDir = join(dir, 'private', 'tls');
  const krb5Path = join(dir, 'krb5.conf');
  const adminDN = `CN=Administrator,CN=Users,${baseDN}`;
  const ldapsUrl = `ldaps://${host}:636`;
  const timings = { provisionMs: 0, startMs: 0 };

  if (!existsSync(conf)) {
    const samba = findBinary('samba');
    const sambaTool = findBinary('samba-tool');
    if (!samba || !sambaTool) throw new Error('samba / samba-tool not found: run ensureDebianPackages(SAMBA_PACKAGES) first');
    const t0 = Date.now();
    for (const d of ['run', 'log', 'usershares']) mkdirSync(join(dir, d), { recursive: true });
    const options = [
      // /8 with an explicit mask: Samba then binds that exact address even though lo only lists 127.0.0.1.
      `interfaces=${host}/8`,
      'bind interfaces only=yes',
      'vfs objects=dfs_samba4 acl_xattr xattr_tdb',
      // Defaults under /run/samba and /var/lib/samba would be shared by two DCs on one machine.
      `pid directory=${join(dir, 'run')}`,
      `ncalrpc dir=${join(dir, 'run', 'ncalrpc')}`,
      `winbindd socket directory=${join(dir, 'run', 'winbindd')}`,
      `ntp signd socket directory=${join(dir, 'run', 'ntp_signd')}`,
      `usershare path=${join(dir, 'usershares')}`,
      `log file=${join(dir, 'log', 'log.%m')}`,
    ];
    await runAsync(sambaTool, [
      'domain', 'provision',
      `--targetdir=${dir}`,
      `--realm=${realm}`,
      `--domain=${domain}`,
      `--host-name=${hostName}`,
      '--server-role=dc',
      '--dns-backend=NONE',
      `--adminpass=${opts.adminPassword}`,
      ...options.map((o) => `--option=${o}`),
    ], setupLog);
    // provision writes its own `server services` line; only LDAP and the KDC are wanted (fewer ports, faster start,
    // and no smbd/winbindd, so the winbind package is not needed).
    const text = readFileSync(conf, 'utf8');
    writeFileSync(conf, text.replace(/^(\s*)server services\s*=.*$/m, '$1server services = ldap, kdc'));
    if (findBinary('openssl')) writeTlsCertificate(tlsDir, realm, fqdn, host, setupLog);
    timings.provisionMs = Date.now() - t0;
    log(`samba ${realm}: provisioned in ${dir} (${timings.provisionMs} ms)`);
  }
  writeFileSync(krb5Path, krb5Conf(realm, host));

  let proc: Child | null = null;

  const isRunning = () => proc !== null && proc.running;

  const start = async (): Promise<void> => {
    if (isRunning()) return;
    const t0 = Date.now();
    // Otherwise the readiness check below could succeed against somebody else's DC.
    for (const port of [636, 389, 88]) {
      if (await portInUse(host, port)) {
        throw new Error(`samba for ${realm}: ${host}:${port} is already in use (a DC left over from an earlier run? see ss -ltnp)`);
      }
    }
    const fd = openSync(logFile, 'a');
    // stdin stays an open pipe: samba -i exits on EOF on stdin, so it dies with this process even on SIGKILL.
    const child = spawnChild(findBinary('samba') ?? 'samba', ['-s', conf, '-i', '-M', 'single'], {
      name: `samba ${realm} on ${host}`,
      stdio: ['pipe', fd, fd],
      env: { ...process.env, KRB5_CONFIG: krb5Path },
    });
    closeSync(fd);
    proc = child;
    live.add(child);
    let exitInfo: string | null = null;
    void child.exited.then(({ code, signal }) => {
      exitInfo = child.error ? child.error.message : `exit ${code ?? signal}`;
      live.delete(child);
    });
    const deadline = Date.now() + (opts.readyTimeoutMs ?? 60_000);
    for (;;) {
      if (exitInfo) {
        throw new Error(`samba for ${realm} on ${host} stopped during start (${exitInfo}):\n${tail(readFileSync(logFile, 'utf8'), 30)}`);
      }
      if (await canBind(ldapsUrl, adminDN, opts.adminPassword)) break;
      if (Date.now() > deadline) {
        await stop();
        throw new Error(`samba for ${realm} on ${host}: no LDAPS bind within ${opts.readyTimeoutMs ?? 60_000} ms:\n${tail(readFileSync(logFile, 'utf8'), 30)}`);
      }
      await sleep(150);
    }
    if (timings.startMs === 0) timings.startMs = Date.now() - t0;
    log(`samba ${realm}: listening on ${host} (${Date.now() - t0} ms)`);
  };

  const stop = async (): Promise<void> => {
    const p = proc;
    if (!p || !isRunning()) return;
    // SIGTERM to samba's group, SIGKILL after 15 s.
    await p.stop(15_000);
    log(`samba ${realm}: stopped`);
  };

  await start();

  if (opts.relaxPasswordPolicy ?? true) {
    // Tests set and reset passwords freely; AD's defaults (complexity, 24 remembered, 1 day minimum age, 42 days
    // maximum) only get in the way. maxPwdAge 0x8000000000000000 means "never".
    const client = new Client({ url: ldapsUrl, tlsOptions: { rejectUnauthorized: false } });
    try {
      await client.bind(adminDN, opts.adminPassword);
      const set = (type: string, value: string) => new Change({ operation: 'replace', modification: new Attribute({ type, values: [value] }) });
      await client.modify(baseDN, [
        set('pwdProperties', '0'),
        set('pwdHistoryLength', '0'),
        set('minPwdAge', '0'),
        set('maxPwdAge', '-9223372036854775808'),
      ]);
    } finally {
      await client.unbind().catch(() => {});
    }
  }

  const caFile = existsSync(join(tlsDir, 'ca.pem')) ? join(tlsDir, 'ca.pem') : undefined;
  return {
    host,
    realm,
    domain,
    baseDN,
    ldapsUrl,
    ldapUrl: `ldap://${host}:389`,
    adminDN,
    adminPassword: opts.adminPassword,
    dir,
    krb5Conf: krb5Path,
    caFile,
    tlsServername: fqdn,
    logFile,
    timings,
    get running() {
      return isRunning();
    },
    stop,
    start,
    async destroy() {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Stops or starts one of the DCs that test/run.ts shares between test files, through its control endpoint
 * (POSTERN_TEST_DC_CONTROL). Only the second DC (ACME.TEST, `ad2`) may be stopped: the first one is used by every
 * test file at once. A test that stops it must start it again before it ends; test files run concurrently, so only
 * the tests written for "the DC went away" should use ACME.TEST.
 */
export async function controlTestDc(action: 'stop' | 'start', which: 'ad2' = 'ad2'): Promise<void> {
  const base = process.env.POSTERN_TEST_DC_CONTROL;
  if (!base) throw new Error('POSTERN_TEST_DC_CONTROL is not set: run the tests through test/run.ts');
  const res = await fetch(`${base}/${which}/${action}`, { method: 'POST' });
  if (!res.ok) throw new Error(`${action} ${which}: HTTP ${res.status} ${await res.text()}`);
}
