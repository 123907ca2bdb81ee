/**
 * The IMAP listener on port 0 over the Maildir store in a temporary directory, with the LDIF directory
 * (fixtures/ad/corp.ldif): the fixture the IMAP protocol tests share. What differs between them is an option
 * (quotas, URLAUTH keys, implicit TLS beside the plain listener, no certificate); a second listener with other
 * options over the same mailbox (a small NOTIFY backlog, a store without MODSEQs) comes from `listen`.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Authenticator } from '../../src/auth/authenticator.ts';
import { authSchema } from '../../src/config/schema.ts';
import { LdifDirectory } from '../../src/directory/ldif/ldif-directory.ts';
import { startImap, type ImapServer, type ImapServerOptions } from '../../src/imap/server.ts';
import { silentLogger, type Logger } from '../../src/lib/logger.ts';
import { MaildirMailbox } from '../../src/store/maildir-mailbox.ts';
import { MaildirStore } from '../../src/store/maildir.ts';
import type { MailboxOwner } from '../../src/store/types.ts';
import { UrlauthKeyStore } from '../../src/store/urlauth-keys.ts';
import { ROOT } from './cli.ts';
import { RawImap } from './raw-imap.ts';

/** Every user's password in fixtures/ad/corp.ldif. */
export const PASSWORD = 'Corp!Passw0rd';
export const HOST = 'mail.example.com';
export const TLS = {
  cert: readFileSync(join(ROOT, 'test/fixtures/tls/localhost.crt')),
  key: readFileSync(join(ROOT, 'test/fixtures/tls/localhost.key')),
};

/** The Authenticator over the LDIF directory, without failure delay. */
export function ldifAuth(opts: { log?: Logger; masterUserEnabled?: () => boolean } = {}): Authenticator {
  return new Authenticator({
    directory: LdifDirectory.fromFile(join(ROOT, 'fixtures/ad/corp.ldif'), { userPrincipalNameIsAddress: true }),
    config: authSchema.parse({ failureDelayMs: 0 }),
    masterUserEnabled: opts.masterUserEnabled ?? (() => false),
    log: opts.log ?? silentLogger,
  });
}

/** A small message from anna to john; `extra` is more header lines, each ending in CRLF. */
export const msg = (subject: string, extra = '') => `From: anna@example.com\r\nTo: john@example.com\r\nSubject: ${subject}\r\n${extra}\r\nbody of ${subject}\r\n`;

/** APPEND with a synchronizing-free literal (LITERAL+), optional flags; asserts the tagged OK. */
export async function append(c: RawImap, tag: string, folder: string, message: string, flags = ''): Promise<string> {
  c.send(`${tag} APPEND ${folder}${flags ? ` (${flags})` : ''} {${Buffer.byteLength(message)}+}\r\n${message}\r\n`);
  const r = await c.until(new RegExp(`^${tag} (OK|NO|BAD).*\\r\\n`, 'm'));
  assert.match(r, new RegExp(`^${tag} OK`, 'm'), r);
  return r;
}

/**
 * Calls `onRead` for each message file the IMAP server reads from now on through `mailbox` (its readMessage, the
 * one way IMAP reads a message): the tests that prove an answer came from the index or a memo count with it.
 */
export function onMessageRead(mailbox: MaildirMailbox, onRead: () => void): void {
  const original = mailbox.readMessage.bind(mailbox);
  mailbox.readMessage = (owner, folder, uid) => {
    onRead();
    return original(owner, folder, uid);
  };
}

export interface ImapFixtureOptions {
  /** Prefix of the temporary directory's name. */
  prefix: string;
  /** Quota by owner (none by default). */
  quotaBytes?: (owner: MailboxOwner) => number;
  /** The certificate for STARTTLS (default true); without it the plain listener offers no STARTTLS. */
  tls?: boolean;
  /** An implicit-TLS listener as well (`tlsServer`), over the same mailbox. */
  implicitTls?: boolean;
  /** URLAUTH (RFC 4467) keys kept in the users' Maildirs. */
  urlauth?: boolean;
}

export interface ImapFixture {
  readonly dir: string;
  /** Mutable: a test may change a setting and put it back. */
  readonly settings: Record<string, unknown>;
  readonly auth: Authenticator;
  /** These three are replaced by `restart`. */
  store: MaildirStore;
  mailbox: MaildirMailbox;
  server: ImapServer;
  tlsServer?: ImapServer;
  /** A raw session logged in as `user` (john.smith by default). */
  login(user?: string): Promise<RawImap>;
  /** Another listener over the same mailbox with these options changed; the caller closes it. */
  listen(over: Partial<ImapServerOptions>): Promise<ImapServer>;
  /** Stops the listeners and the mailbox and starts them again on the same directory (a new store unless `keepStore`). */
  restart(opts?: { keepStore?: boolean }): Promise<void>;
  /** Stops everything and removes the directory. */
  close(): Promise<void>;
}

export async function startImapFixture(opts: ImapFixtureOptions): Promise<ImapFixture> {
  const dir = await mkdtemp(join(tmpdir(), opts.prefix));
  const settings: Record<string, unknown> = { 'mailbox.imap': true, 'mailbox.allowUnencrypted': true, 'mailbox.deletedToTrash': false };
  const auth = ldifAuth();
  const newStore = () => new MaildirStore({ root: join(dir, 'mail'), hostname: HOST });
  const options = (): ImapServerOptions => ({
    port: 0,
    host: '127.0.0.1',
    secure: false,
    ...(opts.tls === false ? {} : { tls: TLS }),
    auth,
    mailbox: fx.mailbox,
    settings: { get: (key) => settings[key] },
    hostname: HOST,
    log: silentLogger,
    ...(opts.urlauth ? { urlauthKeys: new UrlauthKeyStore({ root: (o) => fx.store.maildirPath(o) }) } : {}),
  });
  const start = async (store: MaildirStore) => {
    fx.store = store;
    fx.mailbox = new MaildirMailbox({ store, quotaBytes: opts.quotaBytes ?? (() => 0), log: silentLogger, debounceMs: 10 });
    fx.server = await startImap(options());
    if (opts.implicitTls) fx.tlsServer = await startImap({ ...options(), secure: true });
  };
  const stop = async () => {
    await fx.server.close();
    await fx.tlsServer?.close();
    fx.mailbox.close();
  };
  const fx = {
    dir,
    settings,
    auth,
    login: (user = 'john.smith') => RawImap.login(fx.server.port, user, PASSWORD),
    listen: (over: Partial<ImapServerOptions>) => startImap({ ...options(), ...over }),
    async restart({ keepStore = false } = {}) {
      await stop();
      await start(keepStore ? fx.store : newStore());
    },
    async close() {
      await stop();
      await rm(dir, { recursive: true, force: true });
    },
  } as ImapFixture;
  await start(newStore());
  return fx;
}
