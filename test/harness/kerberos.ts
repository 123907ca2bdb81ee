/**
 * Kerberos for the SASL GSSAPI tests (src/auth/gssapi.ts), against a running test DC (test/harness/samba.ts):
 *   - servicePrincipals(): an AD service account with the SPNs imap/, pop/, smtp/ and sieve/<host>
 *     (`samba-tool spn add`) and a keytab of their keys (`samba-tool domain exportkeytab --principal`), what an
 *     admin does for a mail server joined to AD;
 *   - kinit() / kvno(): a user's TGT and service tickets in a private credential cache, with the DC's krb5.conf.
 * samba-tool works on the DC's own database, so it is given the DC's smb.conf (`-s DIR/etc/smb.conf`), as
 * samba.ts runs it. Every command runs in its own process group with a deadline (test/harness/children.ts).
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { execChild, type ChildOwner } from './children.js';
import { findBinary } from './packages.js';

export const GSSAPI_SERVICES = ['imap', 'pop', 'smtp', 'sieve'] as const;

export interface KerberosDc {
  /** The DC's directory (POSTERN_TEST_AD_DIR): etc/smb.conf is there. */
  dir: string;
  realm: string;
  /** krb5.conf for the realm (POSTERN_TEST_KRB5_CONF). */
  krb5Conf: string;
}

/** Environment for the MIT krb5 tools and libraries (kinit, kvno, curl): this realm's config, this cache. */
export function krb5Env(dc: KerberosDc, ccache: string): NodeJS.ProcessEnv {
  return { ...process.env, KRB5_CONFIG: dc.krb5Conf, KRB5CCNAME: `FILE:${ccache}` };
}

function sambaTool(dc: KerberosDc, args: string[], owner?: ChildOwner) {
  const bin = findBinary('samba-tool');
  if (!bin) throw new Error('samba-tool not found: run ensureDebianPackages(SAMBA_PACKAGES) first');
  // samba-tool is slow to start on a loaded machine (Python, the whole sam.ldb): a generous deadline.
  return execChild(bin, [...args, '-s', join(dc.dir, 'etc', 'smb.conf')], { timeout: 180_000, owner });
}

/** A strong random password that AD's complexity rules accept. */
export function randomPassword(): string {
  return `Gs!${randomBytes(9).toString('base64url')}9a`;
}

export interface ServicePrincipals {
  /** sAMAccountName of the service account that holds the SPNs. */
  account: string;
  keytab: string;
  /** imap/, pop/, smtp/ and sieve/<host>@REALM. */
  principals: string[];
}

/**
 * Creates the service account `account`, registers imap/, pop/, smtp/ and sieve/<hostname> on it and exports their keys to
 * `keytab`. The SPNs must be unique in the forest, so a test uses a host name of its own.
 */
export async function servicePrincipals(
  dc: KerberosDc,
  opts: { account: string; hostname: string; keytab: string; owner?: ChildOwner },
): Promise<ServicePrincipals> {
  await sambaTool(dc, ['user', 'create', opts.account, randomPassword()], opts.owner);
  const principals: string[] = [];
  for (const service of GSSAPI_SERVICES) {
    const spn = `${service}/${opts.hostname}`;
    await sambaTool(dc, ['spn', 'add', spn, opts.account], opts.owner);
    principals.push(`${spn}@${dc.realm}`);
  }
  for (const principal of principals) {
    // One exportkeytab per principal: each run adds that principal's keys (all enctypes) to the file.
    await sambaTool(dc, ['domain', 'exportkeytab', opts.keytab, `--principal=${principal}`], opts.owner);
  }
  return { account: opts.account, keytab: opts.keytab, principals };
}

/** Creates an AD user (enabled, password never expires is not needed for a test). */
export async function createUser(dc: KerberosDc, login: string, password: string, owner?: ChildOwner): Promise<void> {
  await sambaTool(dc, ['user', 'create', login, password], owner);
}

/** Disables an AD user (userAccountControl ACCOUNTDISABLE), as an admin does in ADUC. */
export async function disableUser(dc: KerberosDc, login: string, owner?: ChildOwner): Promise<void> {
  await sambaTool(dc, ['user', 'disable', login], owner);
}

/** kinit for `principal` into `ccache`, the password on stdin. */
export async function kinit(dc: KerberosDc, principal: string, password: string, ccache: string, owner?: ChildOwner): Promise<void> {
  await execChild('kinit', [principal], { env: krb5Env(dc, ccache), input: `${password}\n`, timeout: 60_000, owner });
}

/** Service tickets for `principals` into `ccache` (kvno asks the KDC for each, as a client does before connecting). */
export async function kvno(dc: KerberosDc, principals: string[], ccache: string, owner?: ChildOwner): Promise<string> {
  const { stdout } = await execChild('kvno', principals, { env: krb5Env(dc, ccache), timeout: 60_000, owner });
  return stdout;
}

/** The principals whose tickets are in `ccache` (klist). */
export async function klist(dc: KerberosDc, ccache: string, owner?: ChildOwner): Promise<string> {
  const { stdout } = await execChild('klist', [], { env: krb5Env(dc, ccache), timeout: 30_000, owner });
  return stdout;
}
