/**
 * One POP3 connection (RFC 1939): reads lines, runs one command at a time from the table in commands/index.ts,
 * upgrades to TLS on STLS (RFC 2595), and owns the AUTHORIZATION → TRANSACTION → UPDATE state.
 */
import type { Socket } from 'node:net';
import type { SecureContext } from 'node:tls';
import type { AuthResult, Authenticator } from '../auth/authenticator.js';
import { LineSession } from '../lib/line-session.js';
import type { Logger } from '../lib/logger.js';
import type { SessionRegistry } from '../lib/session-registry.js';
import type { MailboxAccess } from '../store/mailbox.js';
import { ownerLabel } from '../store/names.js';
import { userOwner } from '../store/types.js';
import { COMMANDS } from './commands/index.js';
import { LineReader } from './line-reader.js';
import { Maildrop } from './maildrop.js';
import type { MaildropLocks } from './maildrop-locks.js';

export type Pop3State = 'authorization' | 'transaction';

/** What every session of one server shares. */
export interface Pop3Context {
  hostname: string;
  auth: {
    authenticate(login: string, password: string, ctx: { client: string; protocol: string }): Promise<AuthResult>;
    /** SASL GSSAPI (auth/gssapi.ts), when the authenticator has it. */
    gssapiConfigured?(): boolean;
    gssapiAvailable?(): boolean;
    authenticateGssapi?: Authenticator['authenticateGssapi'];
  };
  mailbox: MailboxAccess;
  settings: { get(key: 'mailbox.pop3' | 'mailbox.allowUnencrypted'): boolean };
  log: Logger;
  secureContext: SecureContext;
  idleTimeoutMs: number;
  maxLineBytes: number;
  /** RFC 1939 §8: the maildrop is locked while a POP3 session is in TRANSACTION state (on every node of a cluster). */
  locks: MaildropLocks;
  /** Open sessions by user (shared with IMAP), so an AD change can end a user's sessions (directory/watch.ts). */
  sessions?: SessionRegistry;
}

/** RFC 2449 §4: command lines are at most 255 octets; AUTH responses are longer, so the reader allows more. */
export const DEFAULT_MAX_LINE = 4096;
/**
 * With SASL GSSAPI on (auth/gssapi.ts): a Kerberos AP-REQ carries the user's PAC (every group SID), up to Windows'
 * MaxTokenSize of 12,000 octets, 16,000 in base64.
 */
export const GSSAPI_MAX_LINE = 16 * 1024;
/** RFC 1939 §3: an inactivity autologout timer of at least 10 minutes. */
export const DEFAULT_IDLE_TIMEOUT_MS = 10 * 60 * 1000;
const MAX_FAILED_LOGINS = 3;
const MAX_BAD_COMMANDS = 10;

export class Pop3Session extends LineSession<string> {
  state: Pop3State = 'authorization';
  /** USER given, waiting for PASS. */
  pendingUser: string | undefined;
  maildrop: Maildrop | undefined;
  user: string | undefined;
  readonly log: Logger;
  private readonly reader: LineReader;
  private failedLogins = 0;
  private badCommands = 0;
  private lockKey: string | undefined;
  private unregister?: () => void;

  constructor(
    socket: Socket,
    readonly ctx: Pop3Context,
    secure: boolean,
  ) {
    super(socket, secure, ctx.log, 'pop3', ctx.idleTimeoutMs);
    this.log = ctx.log;
    this.reader = new LineReader(ctx.maxLineBytes);
    this.attach(socket);
  }

  /** RFC 2595 §2 / the seed: credentials only over TLS unless `mailbox.allowUnencrypted`. */
  loginAllowed(): boolean {
    return this.secureNow || this.ctx.settings.get('mailbox.allowUnencrypted');
  }

  async run(): Promise<void> {
    this.send(`+OK ${this.ctx.hostname} POP3 ready`);
    for (;;) {
      const line = await this.nextLine();
      if (line === null) break;
      await this.dispatch(line);
    }
    await this.finish();
  }

  send(line: string): void {
    this.write(Buffer.from(`${line}\r\n`, 'utf8'));
  }

  ok(text = ''): void {
    this.send(text ? `+OK ${text}` : '+OK');
  }

  err(text: string): void {
    this.send(`-ERR ${text}`);
  }

  /** A multi-line response whose body is already dot-stuffed and terminated. */
  async sendMultiline(first: string, body: Buffer): Promise<void> {
    this.send(first);
    await this.writeAndDrain(body);
  }

  /** Counts a failed login; after a few the connection is closed (the authenticator already delayed each one). */
  loginFailed(): void {
    if (++this.failedLogins >= MAX_FAILED_LOGINS) {
      this.send('-ERR [AUTH] too many failed logins');
      this.end('too many failed logins');
    }
  }

  /** After a successful authentication: locks the maildrop and opens INBOX (RFC 1939 §4 → §5). */
  async enterTransaction(result: Extract<AuthResult, { status: 'ok' }>, mechanism: string): Promise<void> {
    const owner = userOwner(result.user);
    const key = ownerLabel(owner).toLowerCase();
    const who = result.master ? `${result.master.login} as ${result.user.login}` : result.user.login;
    const fields = { user: result.user.login, ...(result.master ? { master: result.master.login } : {}), client: this.client, protocol: 'pop3', mechanism, tls: this.secureNow };
    let lock: 'ok' | 'in-use';
    try {
      lock = await this.ctx.locks.acquire(key);
    } catch (err) {
      // The cluster's lock store (PostgreSQL) cannot answer: temporary, never a login without the lock.
      this.log.error({ ...fields, err, result: 'error' }, `login ${who}: cannot lock the maildrop`);
      this.err('[SYS/TEMP] cannot lock the mailbox, try again later');
      return;
    }
    if (lock === 'in-use') {
      this.log.info({ ...fields, result: 'in-use' }, `login ${who} refused: maildrop in use`);
      this.err('[IN-USE] mailbox is in use by another POP3 session');
      return;
    }
    this.lockKey = key;
    try {
      const state = await this.ctx.mailbox.openFolder(owner, 'INBOX');
      this.maildrop = new Maildrop(
        owner,
        state.uidValidity,
        state.messages.map((m) => ({ uid: m.uid, size: m.size })),
      );
    } catch (err) {
      this.releaseLock();
      this.log.error({ ...fields, err, result: 'error' }, `login ${who}: cannot open INBOX`);
      this.err('[SYS/TEMP] cannot open the mailbox, try again later');
      return;
    }
    this.state = 'transaction';
    this.user = result.user.login;
    // Closed without QUIT, so no UPDATE state: messages marked deleted stay (RFC 1939 §6).
    this.unregister = this.ctx.sessions?.add(result.user.login, {
      protocol: 'pop3',
      close: (reason) => {
        this.send(`-ERR [SYS/PERM] ${reason}, closing connection`);
        this.end(reason);
      },
    });
    this.pendingUser = undefined;
    this.log.info({ ...fields, result: 'ok' }, `login ${who}`);
    const { count, octets } = this.maildrop.totals();
    this.ok(`maildrop has ${count} message${count === 1 ? '' : 's'} (${octets} octets)`);
  }

  /** QUIT: the UPDATE state runs in the command; this ends the session. */
  quit(reason: string): void {
    this.end(reason);
  }

  /**
   * RFC 2595 §4 STLS: +OK, then the TLS handshake on the same connection. Everything the client sent after STLS
   * and before the handshake is dropped unread (CVE-2011-0411), and the session starts over in AUTHORIZATION.
   */
  startTls(): void {
    this.ok('Begin TLS negotiation');
    this.pendingUser = undefined;
    this.upgradeToTls(this.ctx.secureContext, () => {});
  }

  protected parse(chunk: Buffer): string[] | 'too-long' {
    return this.reader.push(chunk);
  }

  protected clearParser(): void {
    this.reader.clear();
  }

  protected onIdleTimeout(): void {
    this.send('-ERR [SYS/TEMP] idle timeout, closing connection');
  }

  protected override onTooLong(): void {
    this.send('-ERR line too long');
  }

  private async dispatch(line: string): Promise<void> {
    const space = line.indexOf(' ');
    const verb = (space < 0 ? line : line.slice(0, space)).toUpperCase();
    const args = space < 0 ? '' : line.slice(space + 1);
    const command = COMMANDS.get(verb);
    if (!command) return this.badCommand(verb === '' ? 'empty command' : 'unknown command');
    if (!command.states.includes(this.state)) return this.badCommand(`${verb} is not valid in the ${this.state.toUpperCase()} state`);
    try {
      await command.run(this, args);
    } catch (err) {
      this.log.error({ err, client: this.client, user: this.user, command: verb }, 'pop3: command failed');
      this.err('[SYS/TEMP] internal error, try again later');
    }
  }

  private badCommand(text: string): void {
    this.err(text);
    if (++this.badCommands >= MAX_BAD_COMMANDS) {
      this.send('-ERR too many bad commands');
      this.end('too many bad commands');
    }
  }

  private async finish(): Promise<void> {
    this.unregister?.();
    this.unregister = undefined;
    if (this.user) {
      this.log.info({ user: this.user, client: this.client, protocol: 'pop3', result: this.endReason }, `logout ${this.user}`);
    }
    this.releaseLock();
    // After QUIT the socket is ending and flushes the last reply itself (end() set a grace timer).
    this.dropSocket();
  }

  private releaseLock(): void {
    if (this.lockKey) this.ctx.locks.release(this.lockKey);
    this.lockKey = undefined;
  }
}
