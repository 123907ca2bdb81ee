/**
 * Who may use the admin API (issue 6 §1): members of the configured AD group (default Domain Admins; nested
 * membership counts) with their AD password over HTTP Basic, or an API token (`Authorization: Bearer …`) listed,
 * as its SHA-256, in the tokens file. Nobody else: every refusal is 401 (a right password of a non-admin is not
 * told apart from a wrong one) and comes after the same failure delay as an IMAP or SMTP login.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import type { Authenticator } from '../auth/authenticator.js';
import type { Directory, UserEntry } from '../directory/types.js';
import { loginKey } from '../directory/types.js';
import type { Logger } from '../lib/logger.js';

export type AdminIdentity = { via: 'password'; login: string } | { via: 'token'; name: string };

export type AuthOutcome =
  | { status: 'ok'; who: AdminIdentity }
  | { status: 'denied'; reason: string }
  | { status: 'tempfail'; message: string };

export interface AdminAuthOptions {
  auth: Authenticator;
  directory: Directory;
  /** The AD group whose members are admins (sAMAccountName or cn, any case). */
  group: string;
  /** Absolute path of the tokens file, if any. */
  tokensFile?: string;
  log: Logger;
}

interface TokenEntry {
  name: string;
  hash: Buffer;
}

const sha256 = (s: string) => createHash('sha256').update(s, 'utf8').digest();

/** `NAME SHA256HEX` or `SHA256HEX` per line; `#` starts a comment. Malformed lines are skipped with a warning. */
export function parseTokensFile(text: string, log?: Logger): TokenEntry[] {
  const out: TokenEntry[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.replace(/#.*/, '').trim();
    if (!line) return;
    const parts = line.split(/\s+/);
    const hex = parts[parts.length - 1].replace(/^sha256:/i, '').toLowerCase();
    if (!/^[0-9a-f]{64}$/.test(hex) || parts.length > 2) {
      log?.warn({ line: i + 1 }, 'admin tokens file: line skipped (expected "NAME SHA256HEX")');
      return;
    }
    out.push({ name: parts.length === 2 ? parts[0] : `token${i + 1}`, hash: Buffer.from(hex, 'hex') });
  });
  return out;
}

/** The first RDN's value of a DN: `CN=Domain Admins,CN=Users,…` → `domain admins`. */
function cnOf(dn: string): string {
  const m = /^\s*cn=((?:\\.|[^,])*)/i.exec(dn);
  return m ? loginKey(m[1].replace(/\\(.)/g, '$1').trim()) : '';
}

export class AdminAuth {
  private tokens: TokenEntry[] = [];
  private tokensStamp = '';
  private readonly log: Logger;

  constructor(private readonly opts: AdminAuthOptions) {
    this.log = opts.log;
  }

  /** The tokens, re-read when the file changes (no restart to add or revoke one). */
  private currentTokens(): TokenEntry[] {
    const file = this.opts.tokensFile;
    if (!file) return [];
    try {
      const st = statSync(file);
      const stamp = `${st.mtimeMs}:${st.size}:${st.ino}`;
      if (stamp !== this.tokensStamp) {
        this.tokens = parseTokensFile(readFileSync(file, 'utf8'), this.log);
        this.tokensStamp = stamp;
      }
    } catch (err) {
      if (this.tokensStamp !== 'missing') this.log.warn({ file, err: (err as Error).message }, 'admin tokens file cannot be read: no token is accepted');
      this.tokens = [];
      this.tokensStamp = 'missing';
    }
    return this.tokens;
  }

  /** Nested membership of the admin group. */
  async isAdmin(user: UserEntry): Promise<boolean> {
    const want = loginKey(this.opts.group.trim());
    const [group, groups] = await Promise.all([this.opts.directory.findGroup(this.opts.group), this.opts.directory.groupsOf(user)]);
    const dns = new Set([...user.memberOf, ...groups.map((g) => g.dn)].map((d) => d.toLowerCase()));
    if (group) return dns.has(group.dn.toLowerCase());
    // A built-in group (Domain Admins) may be missing from an exported LDIF although users carry it in memberOf:
    // only then is the group recognised by its name.
    return groups.some((g) => loginKey(g.name) === want) || [...dns].some((dn) => cnOf(dn) === want);
  }

  async check(header: string | undefined, client: string): Promise<AuthOutcome> {
    const delay = this.opts.auth.delay;
    const deny = async (reason: string): Promise<AuthOutcome> => {
      await delay.fail(client);
      this.log.info({ client, reason }, 'admin: access refused');
      return { status: 'denied', reason };
    };
    if (!header) return { status: 'denied', reason: 'no credentials' }; // the usual first request of a client: no delay
    const sp = header.indexOf(' ');
    const scheme = (sp < 0 ? header : header.slice(0, sp)).toLowerCase();
    const value = sp < 0 ? '' : header.slice(sp + 1).trim();
    if (scheme === 'bearer') {
      const presented = sha256(value);
      const hit = value ? this.currentTokens().find((t) => t.hash.length === presented.length && timingSafeEqual(t.hash, presented)) : undefined;
      if (!hit) return deny('unknown token');
      delay.succeed(client);
      return { status: 'ok', who: { via: 'token', name: hit.name } };
    }
    if (scheme !== 'basic') return deny(`unsupported scheme ${scheme}`);
    const decoded = Buffer.from(value, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon <= 0) return deny('malformed basic credentials');
    const login = decoded.slice(0, colon);
    const password = decoded.slice(colon + 1);
    const r = await this.opts.auth.authenticate(login, password, { client, protocol: 'admin' });
    if (r.status === 'tempfail') return { status: 'tempfail', message: r.message };
    if (r.status !== 'ok') return { status: 'denied', reason: r.status }; // the authenticator already waited
    // "john*admin" opens john's mailbox; it is not john's (nor admin's) admin access.
    if (r.master) return deny('master login');
    let member: boolean;
    try {
      member = await this.isAdmin(r.user);
    } catch (err) {
      return { status: 'tempfail', message: (err as Error).message };
    }
    if (!member) return deny(`${r.user.login} is not a member of ${this.opts.group}`);
    return { status: 'ok', who: { via: 'password', login: r.user.login } };
  }
}
