/**
 * The one login check used by SMTP AUTH, IMAP, POP3 and the admin API (DESIGN.md §3, the seed's Mailboxes page).
 *
 * Order matters: empty password → refused before anything reaches AD (an empty simple bind is an anonymous bind
 * and succeeds, RFC 4513 §5.1.2); the login is looked up with an escaped filter, so `*` or `a)(|(x=*` match
 * nobody; accounts that cannot log in are refused without a bind (no bad-password count on a locked account);
 * AD unreachable → `tempfail`, never "wrong password". Every failure answers after the failure delay.
 */
import type { AuthConfig } from '../config/schema.js';
import type { Directory, UserEntry } from '../directory/types.js';
import { loginKey } from '../directory/types.js';
import { TempFailure } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import { FailureDelay } from './failure-delay.js';
import { SaslCancelled, type GssapiAcceptor, type GssapiService, type SaslConversation } from './gssapi.js';
import { kerberosCheck } from './kerberos.js';

export type AuthResult =
  | { status: 'ok'; user: UserEntry; master?: UserEntry }
  /** Unknown login or wrong password: protocols must not tell the two apart. */
  | { status: 'invalid' }
  /** Right or unchecked password, but the account may not log in now. Protocols answer as for `invalid`. */
  | { status: 'disabled'; user: UserEntry; reason: 'disabled' | 'expired' | 'locked' | 'must-change-password' }
  | { status: 'tempfail'; message: string };

export interface AuthContext {
  /** Client IP address: the failure delay grows per address. */
  client: string;
  protocol: string;
  /**
   * Whether the master-user syntax may be used on this protocol; default yes. SMTP passes `smtp.masterUserAuth`:
   * the seed's master user is for the IMAP server (mailbox access), not for sending as anyone.
   */
  allowMaster?: boolean;
}

export interface AuthenticatorOptions {
  directory: Directory;
  config: AuthConfig;
  /** The runtime switch `mailbox.masterUser` (off by default), read at every login. */
  masterUserEnabled: () => boolean;
  log: Logger;
  /** Overrides config.failureDelayMs (the CLI `auth test` answers at once). */
  failureDelay?: FailureDelay;
  /** SASL GSSAPI (Kerberos single sign-on) when `auth.kerberos.keytab` is set. */
  gssapi?: GssapiAcceptor;
  /**
   * A login lookup past the directory cache, for ticket logins: with a password AD's own bind refuses an account
   * disabled a moment ago; with a Kerberos ticket nothing else would. Default: the directory (cached).
   */
  freshLogin?: (login: string) => Promise<UserEntry | null>;
}

/** A GSSAPI login ends like a password login, or the client cancelled it ("*"). */
export type GssapiResult = AuthResult | { status: 'cancelled' };

function denyReason(u: UserEntry): 'disabled' | 'expired' | 'locked' | 'must-change-password' | null {
  if (u.disabled) return 'disabled';
  if (u.expired) return 'expired';
  if (u.locked) return 'locked';
  if (u.mustChangePassword) return 'must-change-password';
  return null;
}

export class Authenticator {
  readonly delay: FailureDelay;
  private readonly log: Logger;

  constructor(private readonly opts: AuthenticatorOptions) {
    this.delay =
      opts.failureDelay ?? new FailureDelay({ baseMs: opts.config.failureDelayMs, maxMs: opts.config.failureDelayMaxMs });
    this.log = opts.log.child({ component: 'auth' });
  }

  async authenticate(login: string, password: string, ctx: AuthContext): Promise<AuthResult> {
    return this.finish(login, await this.check(login, password, ctx), ctx);
  }

  /** Whether SASL GSSAPI is configured (auth.kerberos); it is offered only while gssapiAvailable(). */
  gssapiConfigured(): boolean {
    return this.opts.gssapi !== undefined;
  }

  /** Whether SASL GSSAPI may be offered now: configured, and its keytab readable (gssapi.ts). */
  gssapiAvailable(): boolean {
    return this.opts.gssapi?.available() ?? false;
  }

  /**
   * A SASL GSSAPI login (RFC 4752): the Kerberos exchange proves the principal; the AD rules then apply as to a
   * password login (disabled, expired, locked and must-change accounts are refused although their ticket is valid:
   * a ticket lives for hours after the account was disabled), with the same failure delay and log lines.
   */
  async authenticateGssapi(service: GssapiService, initial: Buffer | undefined, conv: SaslConversation, ctx: AuthContext): Promise<GssapiResult> {
    const acceptor = this.opts.gssapi;
    if (!acceptor) return this.finish('(gssapi)', { status: 'invalid' }, ctx);
    let outcome;
    try {
      outcome = await acceptor.accept(service, initial, conv);
    } catch (err) {
      if (err instanceof SaslCancelled) return { status: 'cancelled' };
      throw err;
    }
    if (outcome.status !== 'ok') {
      this.log.info({ client: ctx.client, protocol: ctx.protocol, mechanism: 'GSSAPI', reason: outcome.reason }, 'GSSAPI exchange failed');
      return this.finish('(gssapi)', outcome.status === 'tempfail' ? { status: 'tempfail', message: outcome.reason } : { status: 'invalid' }, ctx);
    }
    return this.finish(outcome.principal, await this.checkPrincipal(outcome.principal, outcome.authzid), ctx);
  }

  private async finish(login: string, result: AuthResult, ctx: AuthContext): Promise<AuthResult> {
    const logFields = { login, client: ctx.client, protocol: ctx.protocol, result: result.status };
    if (result.status === 'ok') {
      this.delay.succeed(ctx.client);
      if (result.master) this.log.info({ ...logFields, master: result.master.login, user: result.user.login }, `master ${result.master.login} as user ${result.user.login}`);
      else this.log.info({ ...logFields, user: result.user.login }, 'login ok');
      return result;
    }
    if (result.status === 'tempfail') {
      this.log.warn({ ...logFields, err: result.message }, 'login temporarily failed');
      return result;
    }
    const waited = await this.delay.fail(ctx.client);
    this.log.info({ ...logFields, ...(result.status === 'disabled' ? { reason: result.reason } : {}), delayMs: waited }, 'login failed');
    return result;
  }

  /**
   * A user who may have mail (enabled: not disabled, not expired) by login, without a password: for whoever must find
   * the owner of something a user made, e.g. the mailbox an IMAP URL names (RFC 4467). Throws TempFailure like a login.
   */
  async findUser(login: string): Promise<UserEntry | null> {
    if (login.trim() === '' || login.includes('\0')) return null;
    const user = await this.opts.directory.findLogin(login);
    return user && user.enabled ? user : null;
  }

  private async check(login: string, password: string, ctx: AuthContext): Promise<AuthResult> {
    if (password === '' || login.trim() === '' || login.includes('\0') || password.includes('\0')) return { status: 'invalid' };
    try {
      const sep = this.opts.config.masterSeparator;
      const at = login.lastIndexOf(sep);
      if (this.opts.masterUserEnabled() && at > 0 && at < login.length - sep.length) {
        // Refused without a bind, answered like a wrong password (after the failure delay).
        if (ctx.allowMaster === false) {
          this.log.info({ login, client: ctx.client, protocol: ctx.protocol }, `master login not allowed on ${ctx.protocol}`);
          return { status: 'invalid' };
        }
        return await this.checkMaster(login.slice(0, at), login.slice(at + sep.length), password);
      }
      const user = await this.opts.directory.findLogin(login);
      if (!user) return { status: 'invalid' };
      const reason = denyReason(user);
      if (reason) return { status: 'disabled', user, reason };
      return (await this.verify(user, password)) === 'ok' ? { status: 'ok', user } : { status: 'invalid' };
    } catch (err) {
      if (err instanceof TempFailure) return { status: 'tempfail', message: err.message };
      throw err;
    }
  }

  /**
   * The AD user of a Kerberos principal: "name@REALM" in our realm (auth.kerberos.realm, default auth.realm) is the
   * user whose sAMAccountName is name (AD's KDC names a user's principal so: MS-KILE §3.3.5.1.1). Asked of AD itself,
   * not of the cache: with a password, AD's bind refuses a just-disabled account; with a ticket nothing else would.
   * An authorization identity (RFC 4752 §3.1) other than the user itself is refused, as for PLAIN: acting as another
   * user is the master user's syntax.
   */
  private async checkPrincipal(principal: string, authzid: string): Promise<AuthResult> {
    const realm = this.opts.config.kerberos?.realm ?? this.opts.config.realm;
    // gss_display_name quotes "/", "@" and "\" inside components with a backslash: such names, and service
    // principals (name/instance), are no user of ours.
    const m = /^([^@/\\\s\0]+)@([^@/\\\s\0]+)$/.exec(principal);
    if (!m || !realm || m[2]!.toUpperCase() !== realm.toUpperCase()) return { status: 'invalid' };
    try {
      const find = this.opts.freshLogin ?? ((l: string) => this.opts.directory.findLogin(l));
      const user = await find(m[1]!);
      if (!user || loginKey(user.login) !== loginKey(m[1]!)) return { status: 'invalid' };
      if (authzid !== '' && loginKey(authzid) !== loginKey(user.login) && loginKey(authzid) !== loginKey(principal)) {
        const as = await find(authzid);
        if (!as || as.dn.toLowerCase() !== user.dn.toLowerCase()) return { status: 'invalid' };
      }
      const reason = denyReason(user);
      if (reason) return { status: 'disabled', user, reason };
      return { status: 'ok', user };
    } catch (err) {
      if (err instanceof TempFailure) return { status: 'tempfail', message: err.message };
      throw err;
    }
  }

  /** "john*admin" with admin's password opens john's mailbox (the seed's "Admin can log in as another user"). */
  private async checkMaster(targetLogin: string, masterLogin: string, password: string): Promise<AuthResult> {
    if (loginKey(masterLogin) !== loginKey(this.opts.config.masterLogin)) return { status: 'invalid' };
    const master = await this.opts.directory.findLogin(masterLogin);
    const target = await this.opts.directory.findLogin(targetLogin);
    if (!master || !target) return { status: 'invalid' };
    // The master cannot log in "as itself" through the master syntax.
    if (master.dn.toLowerCase() === target.dn.toLowerCase()) return { status: 'invalid' };
    const masterDenied = denyReason(master);
    if (masterDenied) return { status: 'disabled', user: master, reason: masterDenied };
    // The target must exist and be enabled; a locked or must-change target is still a mailbox the admin may open.
    if (!target.enabled) return { status: 'disabled', user: target, reason: target.disabled ? 'disabled' : 'expired' };
    return (await this.verify(master, password)) === 'ok' ? { status: 'ok', user: target, master } : { status: 'invalid' };
  }

  private verify(user: UserEntry, password: string) {
    const cfg = this.opts.config;
    if (cfg.method === 'kerberos') {
      const realm = cfg.realm!;
      return kerberosCheck(user.login, password, cfg.service ?? `krbtgt/${realm}`, realm);
    }
    return this.opts.directory.verifyPassword(user, password);
  }
}
