/**
 * Makes sure the Debian packages the integration tests need are installed (DESIGN.md §5): installs them when running
 * as root, otherwise fails with a message naming what is missing.
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants, rmSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';

export interface DebianPackage {
  /** A program the package installs, looked up on PATH and in the sbin directories. */
  binary: string;
  /** Debian package name; several may be given separated by spaces (all are installed together). */
  package: string;
  /** A Perl module the package installs, for packages with no program of their own (checked with perl -M). */
  perlModule?: string;
  /** A file the package installs, for a library with no program of its own. */
  file?: string;
}

/**
 * What a Samba AD DC needs on a fresh Debian 12 with --no-install-recommends (checked in a minbase debootstrap):
 * `samba` alone cannot provision. samba-ad-provision holds the schema files provision reads, samba-dsdb-modules the
 * ldb modules of sam.ldb, and samba-vfs-modules the acl_xattr/xattr_tdb/dfs_samba4 modules that provision loads to
 * set the sysvol ACLs. winbind is NOT needed: the harness runs only the ldap and kdc services.
 * ldap-utils and krb5-user are for the tests and for debugging (ldapsearch, kinit).
 */
export const SAMBA_PACKAGES: DebianPackage[] = [
  { binary: 'samba', package: 'samba samba-ad-provision samba-dsdb-modules samba-vfs-modules' },
  { binary: 'samba-tool', package: 'samba-common-bin' },
  { binary: 'ldapsearch', package: 'ldap-utils' },
  { binary: 'kinit', package: 'krb5-user' },
];

/**
 * clamd and spamd for the filter tests (test/harness/clamd.ts, spamd.ts). sigtool (which writes the harness's
 * signature database) is in clamav, not clamav-daemon. Debian 12 split spamd out of spamassassin; the rules the
 * tests use are the ones spamassassin ships in /usr/share/spamassassin (no sa-update: there is no network).
 * Installing them starts nothing: ensureDebianPackages installs under a policy-rc.d that forbids starting services.
 */
export const FILTER_PACKAGES: DebianPackage[] = [
  { binary: 'clamd', package: 'clamav-daemon' },
  { binary: 'sigtool', package: 'clamav' },
  { binary: 'spamd', package: 'spamd' },
  { binary: 'spamassassin', package: 'spamassassin' },
];

/**
 * The real clients the protocol and integration tiers drive, and the ones `npm start` and the README tell the user to
 * run (swaks to send, curl to read). scripts/install-debian-deps.sh installs the same list; a test that needs one
 * calls ensureDebianPackages in its before(), so a machine without it fails with a line naming the package instead
 * of skipping.
 */
export const CLIENT_PACKAGES = {
  mbsync: { binary: 'mbsync', package: 'isync' },
  fetchmail: { binary: 'fetchmail', package: 'fetchmail' },
  swaks: { binary: 'swaks', package: 'swaks' },
  curl: { binary: 'curl', package: 'curl' },
  kinit: { binary: 'kinit', package: 'krb5-user' },
  /** The ManageSieve client (RFC 5804) the managesieve tests drive. */
  sieveConnect: { binary: 'sieve-connect', package: 'sieve-connect' },
  /** Authen::SASL's GSSAPI mechanism for sieve-connect --authmech GSSAPI. */
  perlGssapi: { binary: 'perl', package: 'libgssapi-perl', perlModule: 'GSSAPI' },
  /** LD_PRELOAD'ed to give a client a hosts file of its own (NSS_WRAPPER_HOSTS): a test host name on loopback. */
  nssWrapper: { binary: 'perl', package: 'libnss-wrapper', file: '/usr/lib/x86_64-linux-gnu/libnss_wrapper.so' },
} satisfies Record<string, DebianPackage>;

/** Headless Chromium for the web admin tests (test/helpers/browser.ts drives it with playwright-core over CDP). */
export const BROWSER_PACKAGES: DebianPackage[] = [{ binary: 'chromium', package: 'chromium' }];

/**
 * PostgreSQL for the postgres state backend's tests (test/harness/postgres.ts runs initdb and postgres itself; the
 * package's own cluster is not started: ensureDebianPackages forbids starting services). Debian keeps the server
 * programs out of PATH, in /usr/lib/postgresql/<major>/bin; Debian 12's `postgresql` is 15.
 */
export const POSTGRES_PACKAGES: DebianPackage[] = [{ binary: '/usr/lib/postgresql/15/bin/postgres', package: 'postgresql' }];

/** Dovecot for the Maildir interop test (test/harness/dovecot.ts): the master, imap and imap-login. */
export const DOVECOT_PACKAGES: DebianPackage[] = [{ binary: 'dovecot', package: 'dovecot-imapd' }];

/** Files that must exist besides the binaries: samba installs fine without its recommends but cannot provision. */
const SAMBA_DATA_FILES: { file: string; package: string }[] = [
  { file: '/usr/share/samba/setup/provision.ldif', package: 'samba-ad-provision' },
  { file: '/usr/lib/x86_64-linux-gnu/samba/ldb/samldb.so', package: 'samba-dsdb-modules' },
  { file: '/usr/lib/x86_64-linux-gnu/samba/vfs/acl_xattr.so', package: 'samba-vfs-modules' },
];

export function findBinary(name: string): string | null {
  // An absolute path (a program Debian keeps out of PATH, like PostgreSQL's) is checked as it is.
  if (name.startsWith('/')) {
    try {
      accessSync(name, constants.X_OK);
      return name;
    } catch {
      return null;
    }
  }
  const dirs = new Set([...(process.env.PATH ?? '').split(delimiter), '/usr/local/sbin', '/usr/sbin', '/sbin']);
  for (const dir of dirs) {
    if (!dir) continue;
    const p = join(dir, name);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return null;
}

function exists(file: string): boolean {
  try {
    accessSync(file, constants.R_OK);
    return true;
  } catch {
    return false;
  }
}

/** The multiarch library path differs off amd64; check the data files only where we know the layout. */
function missingSambaData(pkgs: DebianPackage[]): string[] {
  if (!pkgs.some((p) => p.binary === 'samba') || !exists('/usr/lib/x86_64-linux-gnu')) return [];
  return SAMBA_DATA_FILES.filter((f) => !exists(f.file)).map((f) => f.package);
}

let aptUpdated = false;

function run(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    encoding: 'utf8',
  });
  if (r.status !== 0) {
    const out = `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n').slice(-20).join('\n');
    throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.status ?? r.signal}):\n${out}`);
  }
}

/**
 * For each binary not found, installs its package(s) with apt-get when running as root; otherwise throws an error
 * that names every missing package and the command to install them.
 */
export async function ensureDebianPackages(pkgs: DebianPackage[], log: (msg: string) => void = () => {}): Promise<void> {
  const missing = new Set<string>();
  for (const p of pkgs) {
    const absent =
      !findBinary(p.binary) ||
      (p.file !== undefined && !exists(p.file)) ||
      (p.perlModule !== undefined && spawnSync('perl', [`-M${p.perlModule}`, '-e1'], { stdio: 'ignore' }).status !== 0);
    if (absent) for (const name of p.package.split(/\s+/).filter(Boolean)) missing.add(name);
  }
  for (const name of missingSambaData(pkgs)) missing.add(name);
  if (missing.size === 0) return;
  const list = [...missing];
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (!isRoot || !findBinary('apt-get')) {
    // One line: it is what a reader of a failed run sees first.
    throw new Error(
      `missing Debian packages: ${list.join(' ')} (install with: apt-get install -y --no-install-recommends ${list.join(' ')}` +
        (isRoot ? '; apt-get not found)' : '; or run the tests as root and they install them)'),
    );
  }
  log(`installing Debian packages: ${list.join(' ')}`);
  if (!aptUpdated) {
    run('apt-get', ['update']);
    aptUpdated = true;
  }
  // Installing samba (or clamav-daemon, spamd) would start its system daemons on every interface (smbd on 445,
  // nmbd); the tests start their own, loopback-only. policy-rc.d exit 101 tells invoke-rc.d not to start anything.
  const policy = '/usr/sbin/policy-rc.d';
  const ownPolicy = !exists(policy);
  if (ownPolicy) writeFileSync(policy, '#!/bin/sh\n# written by postern test/harness/packages.ts during apt-get install\nexit 101\n', { mode: 0o755 });
  try {
    run('apt-get', ['install', '-y', '--no-install-recommends', ...list]);
  } finally {
    if (ownPolicy) rmSync(policy, { force: true });
  }
  const still = pkgs.filter((p) => !findBinary(p.binary)).map((p) => p.binary);
  if (still.length > 0) throw new Error(`installed ${list.join(' ')} but still missing: ${still.join(' ')}`);
}
