/**
 * One ManageSieve connection (RFC 5804): reads commands (parser.ts), runs one at a time from the table in
 * commands/index.ts, upgrades to TLS on STARTTLS (§2.2), and owns the non-authenticated → authenticated state.
 */
import type { Socket } from 'node:net';
import type { SecureContext } from 'node:tls';
import type { AuthResult, Authenticator } from '../auth/authenticator.js';
import type { UserEntry } from '../directory/types.js';
import { LineSession } from '../lib/line-session.js';
import type { Logger } from '../lib/logger.js';
import type { SessionRegistry } from '../lib/session-registry.js';
import type { SieveScriptStore } from '../sieve/storage.js';
import { COMMANDS } from './commands/index.js';
import { SieveNo } from './commands/types.js';
import { CommandParser, type ParsedLine } from './parser.js';
import { responseLine, sieveString, type ResponseCode } from './response.js';

export type ManageSieveState = 'non-authenticated' | 'authenticated';

/** One error of a script that does not compile (the interpreter's compile(), src/sieve). */
export interface SieveCompileError {
  line: number;
  column: number;
  message: string;
}

/** What ManageSieve needs of the Sieve interpreter: the check PUTSCRIPT and CHECKSCRIPT run, and its extensions. */
export interface SieveChecker {
  check(source: string): { ok: true; warnings?: string[] } | { ok: false; errors: SieveCompileError[] };
  /** RFC 5804 §1.7 SIEVE capability: the extensions scripts may require. */
  extensions: readonly string[];
  /** RFC 5804 §1.7 MAXREDIRECTS: redirect actions one script run may make. */
  maxRedirects: number;
}

/** What every session of one server shares. */
export interface ManageSieveContext {
  hostname: string;
  auth: {
    authenticate(login: string, password: string, ctx: { client: string; protocol: string }): Promise<AuthResult>;
    /** SASL GSSAPI (auth/gssapi.ts, service "sieve"), offered while the authenticator has a readable keytab. */
    gssapiAvailable?(): boolean;
    authenticateGssapi?: Authenticator['authenticateGssapi'];
  };
  /** mailbox.allowUnencrypted (false by default): SASL mechanisms are offered and accepted only after STARTTLS. */
  settings: { get(key: 'mailbox.allowUnencrypted'): unknown };
  scripts: SieveScriptStore;
  /** The user's mailbox home, the directory holding Maildir/ and sieve/ (MaildirStore.homePath). */
  home(user: UserEntry): string;
  sieve: SieveChecker;
  log: Logger;
  secureContext: SecureContext;
  idleTimeoutMs: number;
  maxLineBytes: number;
  /** Largest literal kept; bigger ones are read and dropped (PUTSCRIPT answers NO (QUOTA/MAXSIZE)). */
  maxLiteralBytes: number;
  /** Open sessions by user (shared with IMAP and POP3), so an AD change can end a user's sessions. */
  sessions?: SessionRegistry;
}

export const DEFAULT_MAX_LINE = 8 * 1024;
/** Dovecot's managesieve and imap autologout: 30 minutes. */
export const DEFAULT_IDLE_TIMEOUT_MS = 30 * 60 * 1000;
const MAX_FAILED_LOGINS = 3;
const MAX_BAD_COMMANDS = 10;

export class ManageSieveSession extends LineSession<ParsedLine> {
  state: ManageSieveState = 'non-authenticated';
  user: UserEntry | undefined;
  master: UserEntry | undefined;
  /** The user's home (scripts in `<home>/sieve/`), set at login. */
  home = '';
  readonly log: Logger;
  private readonly parser: CommandParser;
  private failedLogins = 0;
  private badCommands = 0;
  private unregister?: () => void;

  constructor(
    socket: Socket,
    readonly ctx: ManageSieveContext,
    secure: boolean,
  ) {
    super(socket, secure, ctx.log, 'managesieve', ctx.idleTimeoutMs);
    this.log = ctx.log;
    this.parser = new CommandParser(ctx.maxLineBytes, ctx.maxLiteralBytes);
    this.attach(socket);
  }

  /** RFC 5804 §2.1 / the seed: credentials only over TLS unless `mailbox.allowUnencrypted`. */
  loginAllowed(): boolean {
    return this.secureNow || this.ctx.settings.get('mailbox.allowUnencrypted') === true;
  }

  /** RFC 5804 §1.7, in the order of its examples; what is announced depends on TLS and on the state. */
  capabilities(): [string, string?][] {
    const caps: [string, string?][] = [['IMPLEMENTATION', 'postern']];
    // An empty SASL list before STARTTLS, as Pigeonhole sends with disable_plaintext_auth: clients upgrade first.
    // GSSAPI (RFC 4752) under the same TLS rule as passwords, and only while its keytab is readable.
    const mechanisms = this.ctx.auth.gssapiAvailable?.() === true ? 'PLAIN LOGIN GSSAPI' : 'PLAIN LOGIN';
    caps.push(['SASL', this.state === 'non-authenticated' && this.loginAllowed() ? mechanisms : '']);
    caps.push(['SIEVE', this.ctx.sieve.extensions.join(' ')]);
    if (!this.secureNow && this.state === 'non-authenticated') caps.push(['STARTTLS']);
    caps.push(['MAXREDIRECTS', String(this.ctx.sieve.maxRedirects)]);
    // §1.7: OWNER is the authenticated user, sent only after AUTHENTICATE.
    if (this.user) caps.push(['OWNER', this.user.login]);
    caps.push(['UNAUTHENTICATE']);
    caps.push(['VERSION', '1.0']);
    return caps;
  }

  sendCapabilities(): void {
    for (const [name, value] of this.capabilities()) {
      this.write(Buffer.concat([sieveString(name), ...(value === undefined ? [] : [Buffer.from(' '), sieveString(value)]), Buffer.from('\r\n')]));
    }
  }

  async run(): Promise<void> {
    this.sendCapabilities();
    this.ok(`${this.ctx.hostname} ManageSieve ready`);
    for (;;) {
      const line = await this.nextLine();
      if (line === null) break;
      await this.dispatch(line);
    }
    this.finish();
  }

  ok(text?: string, code?: ResponseCode): void {
    this.write(responseLine('OK', code, text));
  }

  no(text: string, code?: ResponseCode): void {
    this.write(responseLine('NO', code, text));
  }

  bye(text: string, code?: ResponseCode): void {
    this.write(responseLine('BYE', code, text));
  }

  /** Counts a failed login; after a few the connection is closed (the authenticator already delayed each one). */
  loginFailed(): void {
    if (++this.failedLogins >= MAX_FAILED_LOGINS) {
      this.bye('Too many failed logins');
      this.end('too many failed logins');
    }
  }

  /** After a successful authentication (RFC 5804 §2.1): the authenticated state, logged like IMAP's logins. */
  loggedIn(result: Extract<AuthResult, { status: 'ok' }>, mechanism: string): void {
    this.state = 'authenticated';
    this.user = result.user;
    this.master = result.master;
    this.home = this.ctx.home(result.user);
    this.failedLogins = 0;
    this.unregister = this.ctx.sessions?.add(result.user.login, {
      protocol: 'managesieve',
      close: (reason) => {
        this.bye(reason);
        this.end(reason);
      },
    });
    const who = result.master ? `master ${result.master.login} as user ${result.user.login}` : result.user.login;
    this.log.info(
      { user: result.user.login, ...(result.master ? { master: result.master.login } : {}), client: this.client, protocol: 'managesieve', mechanism, tls: this.secureNow, result: 'ok' },
      `login ${who}`,
    );
  }

  /** RFC 5804 §2.14.1 UNAUTHENTICATE: back to the non-authenticated state on the same connection. */
  loggedOut(reason: string): void {
    this.logLogout(reason);
    this.unregister?.();
    this.unregister = undefined;
    this.state = 'non-authenticated';
    this.user = undefined;
    this.master = undefined;
    this.home = '';
  }

  /**
   * RFC 5804 §2.2 STARTTLS: OK, then the TLS handshake on the same connection. Everything the client sent after
   * STARTTLS and before the handshake is dropped unread (CVE-2011-0411); after it the server re-issues its
   * capabilities unasked, followed by OK.
   */
  startTls(): void {
    this.ok('Begin TLS negotiation now');
    this.upgradeToTls(this.ctx.secureContext, () => {
      this.sendCapabilities();
      this.ok('TLS negotiation successful');
    });
  }

  protected parse(chunk: Buffer): ParsedLine[] {
    return this.parser.push(chunk);
  }

  protected clearParser(): void {
    this.parser.clear();
  }

  protected onIdleTimeout(): void {
    this.bye('Disconnected for inactivity', 'TRYLATER');
  }

  private async dispatch(line: ParsedLine): Promise<void> {
    if ('error' in line) return this.badCommand(`Syntax error: ${line.error}`);
    const [first, ...args] = line.tokens;
    if (!first) return this.badCommand('Empty command');
    if (first.kind !== 'atom') return this.badCommand('Expected a command name');
    const verb = first.value.toUpperCase();
    const command = COMMANDS.get(verb);
    if (!command) return this.badCommand(`Unknown command ${verb}`);
    if (!command.states.includes(this.state)) {
      return this.badCommand(this.state === 'non-authenticated' ? `${verb} needs authentication` : `${verb} is not valid after authentication`);
    }
    try {
      await command.run(this, args);
    } catch (err) {
      if (err instanceof SieveNo) {
        if (err.bad) return this.badCommand(err.message);
        return this.no(err.message, err.code);
      }
      this.log.error({ err, client: this.client, user: this.user?.login, command: verb }, 'managesieve: command failed');
      this.no('Internal error, try again later', 'TRYLATER');
    }
  }

  private badCommand(text: string): void {
    this.no(text);
    if (++this.badCommands >= MAX_BAD_COMMANDS) {
      this.bye('Too many invalid commands');
      this.end('too many invalid commands');
    }
  }

  private logLogout(reason: string): void {
    if (!this.user) return;
    this.log.info({ user: this.user.login, client: this.client, protocol: 'managesieve', result: reason }, `logout ${this.user.login}`);
  }

  private finish(): void {
    this.logLogout(this.endReason);
    this.unregister?.();
    this.unregister = undefined;
    this.dropSocket();
  }
}
