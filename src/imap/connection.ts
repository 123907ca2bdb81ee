/**
 * One IMAP connection: the state machine of RFC 3501 §3 (not authenticated → authenticated → selected → logout),
 * STARTTLS, the idle timeout, and the session's own view of the selected folder.
 *
 * Commands run one at a time in the order received. The selected folder's view (sequence numbers) changes only when
 * the client is told: changes reported by `watch` are queued and sent as untagged EXISTS / EXPUNGE / FETCH FLAGS at
 * command completion, or at once during IDLE. EXPUNGE is held back during FETCH, STORE and SEARCH, because the client
 * may be using the sequence numbers it got from them (RFC 3501 §7.4.1). With NOTIFY (RFC 5465, notify.ts) they are
 * also sent between commands, and so are STATUS / LIST for other mailboxes. Every expunge goes through
 * reportExpunge, which also tells updating searches (RFC 5267, search-context.ts) what left their result.
 */
import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { TLSSocket, type SecureContext } from 'node:tls';
import { constants as zlibConstants, createDeflateRaw, createInflateRaw, type DeflateRaw, type InflateRaw } from 'node:zlib';
import type { Authenticator } from '../auth/authenticator.js';
import type { UserEntry } from '../directory/types.js';
import { TempFailure } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';
import { FolderNotFound, OverQuota, type FolderChange, type FolderSummary, type MailboxAccess, type MessageMeta } from '../store/mailbox.js';
import type { MailboxOwner } from '../store/types.js';
import { ImapError, PERMANENT_FLAGS, SHARED_PREFIX, type Completion, type ImapState } from './command.js';
import { COMMANDS } from './commands/index.js';
import { CommandReader, formatSequenceSet, MAX_LITERAL, parseCommand, ParseError, peekCommand, type LiteralDecision } from './parser.js';
import { encode, type Value } from './response.js';
import { sendFetch } from './commands/fetch.js';
import { NOTIFY_BACKLOG_BYTES, NotifyState, type NotifySpec } from './notify.js';
import { MAX_SEARCH_CONTEXTS, removeFromContext, updateContexts, type SearchContext } from './search-context.js';
import type { UrlauthKeys } from '../store/urlauth-keys.js';
import type { UrlauthContext } from './urlauth.js';
import type { SessionRegistry } from '../lib/session-registry.js';
import { condstoreEnabled, modseqItem, noteModseq, qresyncEnabled } from './condstore.js';
import { completeLogin } from './commands/login.js';

/** The runtime settings the IMAP server reads (satisfied by `Settings`). */
export interface ImapSettings {
  get(key: 'mailbox.imap' | 'mailbox.allowUnencrypted' | 'mailbox.deletedToTrash'): unknown;
}

export interface ImapDeps {
  auth: Authenticator;
  mailbox: MailboxAccess;
  settings: ImapSettings;
  hostname: string;
  log: Logger;
  resolveOwner: (user: UserEntry) => MailboxOwner;
  /** Groups whose shared folders the user sees under "Shared/" (nested membership resolved by the caller). */
  sharedGroups?: (user: UserEntry) => Promise<string[]>;
  /** Spam training when the user moves a message into or out of Junk (spam-training.ts). */
  /** Resolves false when the message was not taught (the user may not train); anything else counts as taught. */
  learn?: (user: UserEntry, kind: 'spam' | 'ham', message: Buffer) => Promise<boolean | void>;
  secureContext?: SecureContext;
  /** RFC 7889 APPENDLIMIT in bytes. */
  appendLimit: number;
  /** RFC 3501 §5.4: at least 30 minutes. */
  idleTimeoutMs: number;
  /** Logged-in sessions per user (by login, case-insensitive); the server shares the map between sessions. */
  maxPerUser: number;
  userSessions: Map<string, number>;
  /** RFC 5465 §5.8: unsent output past which NOTIFY overflows (NOTIFY_BACKLOG_BYTES by default). */
  notifyBacklogBytes?: number;
  /** URLAUTH (RFC 4467): the mailbox access keys, and the directory to find the user a URL names. */
  urlauth?: { keys: UrlauthKeys; findUser: (login: string) => Promise<UserEntry | null> };
  /** RFC 2221: the IMAP server (`imap://host[:port]/`) holding a domain's mailboxes, null when they are here. */
  imapReferral?: (domain: string) => string | null | undefined;
  /** Open sessions by user, so an AD change that takes the user's access away ends them (directory/watch.ts). */
  sessions?: SessionRegistry;
  /**
   * imap.workers (workers.ts): moves a session, right after its password was verified, to the worker process that
   * serves the mailbox, so that every session of one mailbox shares one process's folder state. `home` is true when
   * this process is it; `send` gives the socket away (the session here is over, without a word to the client).
   */
  handoff?: {
    home(user: UserEntry): boolean;
    send(socket: Socket, state: HandoffState): void;
  };
}

/** What a LOGIN / AUTHENTICATE verified in one worker, for the worker that completes it (ImapSession.adopt). */
export interface HandoffState {
  /** The tag of the LOGIN or AUTHENTICATE command, still unanswered. */
  tag: string;
  user: UserEntry;
  master?: UserEntry;
}

/** A mailbox name as the client sees it, resolved to whose store and which folder. */
export interface MailboxRef {
  name: string;
  owner: MailboxOwner;
  folder: string;
  /** The group, for a shared folder. */
  shared?: string;
}

export interface SelectedFolder {
  /** The name the client selected. */
  name: string;
  owner: MailboxOwner;
  /** The folder in the owner's store. */
  folder: string;
  shared?: string;
  readOnly: boolean;
  uidValidity: number;
  uidNext: number;
  /**
   * RFC 7162 HIGHESTMODSEQ of the client's view: the folder's at SELECT, raised by each change reported since.
   * 0 when the store keeps no MODSEQs ([NOMODSEQ], §3.1.2.2).
   */
  highestModseq: number;
  /**
   * The client's view: index + 1 is the sequence number. Its objects are the store's, shared with other sessions
   * (FolderState): one is changed only through ImapSession.own, which puts the session's copy in its place.
   */
  messages: MessageMeta[];
  /**
   * What SELECT reports (RFC 3501 §6.3.1): EXISTS, the first unseen sequence number (0 = none) and the keywords in
   * use, as the folder was when opened.
   */
  opened: { exists: number; firstUnseen: number; keywords: string[] };
  /**
   * UIDs whose flags may have changed after SELECT without the session having been told: a view read lazily
   * (lazyView) takes the messages' current flags, so the change then reported for them is sent even when the flags
   * look unchanged.
   */
  stale?: Set<number>;
  /** The copies own() made: this session's to change. */
  owned: WeakSet<MessageMeta>;
  /** RFC 3501 §2.3.2: UIDs this session sees as \Recent (claimed by its SELECT, or unclaimed when EXAMINEd). */
  recent: Set<number>;
  /**
   * Keywords announced in FLAGS / PERMANENTFLAGS. It only grows while the folder is selected: a keyword a client saw
   * in a FETCH must have been in FLAGS first (RFC 3501 §7.2.6), and dropping one still in use confuses clients.
   */
  keywords: Set<string>;
  /** UIDs this session COPYed elsewhere: with `mailbox.deletedToTrash` their EXPUNGE is a real one (expunge.ts). */
  copied: Set<number>;
  /** RFC 5182 SEARCHRES: UIDs saved by SEARCH RETURN (SAVE), "$" in later commands; empty at SELECT. */
  saved: Set<number>;
  /** RFC 5267 §4.3: updating searches (SEARCH / SORT RETURN (UPDATE)) by tag; they end with the selection. */
  contexts: Map<string, SearchContext>;
  /** UIDs that arrived or changed flags since the contexts were last brought up to date. */
  changed: Set<number>;
  pending: FolderChange[];
  unwatch: () => void;
}

export interface MessageRef {
  seq: number;
  meta: MessageMeta;
}

/** The most a MULTIAPPEND may carry in total (one message may always be as large as APPENDLIMIT). */
const MAX_MULTIAPPEND = 100 * 1024 * 1024;

/**
 * Commands whose replies are not gathered (see ImapSession.cork): they swap the transport or wait for the client.
 */
const UNCORKED = new Set(['STARTTLS', 'COMPRESS', 'IDLE', 'AUTHENTICATE']);
/** Commands after which changes made in other worker processes (imap.workers) are waited for before reporting. */
const SETTLE = new Set(['NOOP', 'CHECK', 'EXPUNGE']);

/** Commands read ahead of the one running before the socket is paused. */
const MAX_QUEUED = 64;

/**
 * RFC 4978 COMPRESS=DEFLATE parameters. zlib's deflate state costs (1 << (windowBits + 2)) + (1 << (memLevel + 9))
 * bytes: the defaults (15, 8) are 256 KiB per connection, 2.5 GB for 10,000 sessions. Our side may use any window
 * (any inflater reads a stream made with a smaller one), so 13 / 7 (96 KiB) keeps most of the ratio on IMAP text.
 * The inflater must accept whatever window the client chose (up to 32 KiB, §4), so it keeps windowBits 15 (~39 KiB).
 * Measured with node:zlib: 142 KiB per session (deflater + inflater, buffers included) against 237 KiB with defaults.
 */
const DEFLATE_OPTIONS = { level: 6, windowBits: 13, memLevel: 7 } as const;
const INFLATE_OPTIONS = { windowBits: 15 } as const;

export class ImapSession {
  state: ImapState = 'not-authenticated';
  secure: boolean;
  user?: UserEntry;
  owner?: MailboxOwner;
  /** Groups with shared folders this user may open, loaded at login. */
  sharedGroups: string[] = [];
  selected?: SelectedFolder;
  /** Extensions turned on with ENABLE (RFC 5161), upper-case. */
  enabled = new Set<string>();
  readonly remoteAddress: string;
  /** The address the client connected to: an IMAP URL naming it names this server (RFC 4467 §9). */
  readonly localAddress: string;
  /** Set by IDLE: changes are sent as they arrive. */
  idling = false;
  /** Set when this session changed the selected folder (APPEND, COPY into it) so the next flush looks for EXISTS. */
  checkExists = false;
  /** RFC 5465 NOTIFY SET of this session; undefined before it and after NOTIFY NONE. */
  notify?: NotifyState;
  /** A command is running: notifications wait for its completion (IDLE excepted). */
  private busy = false;

  private readonly reader: CommandReader;
  private frames: Buffer[] = [];
  private frameWaiter?: (frame: Buffer | null) => void;
  private closed = false;
  private flushing: Promise<void> = Promise.resolve();
  private readonly log: Logger;
  /** Set by COMPRESS (RFC 4978): everything written goes through it to the socket, everything read comes out of inflate. */
  private deflate?: DeflateRaw;
  private inflate?: InflateRaw;
  private flushScheduled = false;
  /** The socket corked for the running command, uncorked when it completes or waits for the client. */
  private corked?: Socket;

  constructor(
    private socket: Socket,
    readonly deps: ImapDeps,
    opts: { secure: boolean },
  ) {
    this.secure = opts.secure;
    this.remoteAddress = socket.remoteAddress ?? '';
    this.localAddress = (socket.localAddress ?? '').replace(/^::ffff:/, '');
    this.log = deps.log;
    this.reader = new CommandReader({
      frame: (data) => {
        this.frames.push(data);
        // A client pipelining faster than we answer is paused rather than buffered without bound.
        if (this.frames.length > MAX_QUEUED) this.input.pause();
        this.wake();
        const command = peekCommand(data).command;
        // RFC 3501 §6.2.1 / DESIGN.md §6: nothing pipelined after STARTTLS may survive the handshake.
        if (!this.secure && command === 'STARTTLS') return 'stop';
        // RFC 4978 §3: what follows a successful COMPRESS is compressed; the reader starts again once it is inflated.
        if (!this.deflate && command === 'COMPRESS') return 'stop';
      },
      literal: (head, size, nonSync) => this.literalDecision(head, size, nonSync),
      refused: (head, decision, nonSync) => {
        const { tag } = peekCommand(head);
        this.write(`${tag} ${decision.status}${decision.code ? ` [${decision.code}]` : ''} ${decision.text}\r\n`);
        if (nonSync) this.bye('Non-synchronizing literal too large');
      },
      tooLong: (head) => {
        const { tag } = peekCommand(head);
        this.write(`${tag} BAD Line too long\r\n`);
      },
    });
    this.attach(socket);
    socket.setTimeout(deps.idleTimeoutMs, () => {
      this.write('* BYE Autologout; idle for too long\r\n');
      this.end();
    });
  }

  /** RFC 9051 behaviour (ENABLE IMAP4rev2); without it the session is exactly RFC 3501's. */
  get rev2(): boolean {
    return this.enabled.has('IMAP4REV2');
  }

  /**
   * Mailbox names are UTF-8 on the wire, not modified UTF-7: after ENABLE UTF8=ACCEPT (RFC 6855 §3) or
   * ENABLE IMAP4rev2 (RFC 9051 §5.1). The store keeps modified UTF-7 on disk either way (names.ts).
   */
  get utf8(): boolean {
    return this.rev2 || this.enabled.has('UTF8=ACCEPT');
  }

  get client(): string {
    return this.remoteAddress;
  }

  /** LOGIN and AUTHENTICATE are refused before TLS unless the admin allowed unencrypted connections. */
  get loginDisabled(): boolean {
    return !this.secure && this.deps.settings.get('mailbox.allowUnencrypted') !== true;
  }

  start(): void {
    this.write(`* OK [CAPABILITY ${this.capabilities().join(' ')}] ${this.deps.hostname} IMAP4rev1 ready\r\n`);
    void this.run();
  }

  /**
   * Gives the connection to the mailbox's home worker (deps.handoff) after its password was verified: true when it
   * went (the caller answers nothing; the other process sends the tagged OK). It stays here, and is served as
   * usual, unless it is a plain TCP socket with nothing read past the LOGIN and nothing unsent: a TLS session's
   * state and a pipelined command already read cannot move with the file descriptor.
   */
  handOff(tag: string, user: UserEntry, master?: UserEntry): boolean {
    const h = this.deps.handoff;
    if (!h || this.closed || h.home(user)) return false;
    const socket = this.socket;
    if (this.secure || socket instanceof TLSSocket || this.deflate || this.frames.length > 0 || !this.reader.empty) return false;
    if (socket.readableLength > 0 || socket.writableLength > 0 || socket.destroyed) return false;
    // Node drops whatever its handle reads once the socket is sent (handle.onread = nop until the receiver's ACK):
    // reading stops now, synchronously, so bytes the client sends from here on wait in the kernel for the new owner.
    // pause() would not do: it stops only once the stream's buffer is full.
    if (!stopReading(socket)) return false;
    this.uncork();
    this.detach();
    socket.setTimeout(0);
    this.closed = true;
    this.wake(null);
    h.send(socket, { tag, user, ...(master ? { master } : {}) });
    return true;
  }

  /** A session handed over by another worker (handOff): its login is completed and answered here, then served. */
  adopt(state: HandoffState): void {
    void this.resumeLogin(state).then(() => (this.closed ? undefined : this.run()));
  }

  private async resumeLogin(state: HandoffState): Promise<void> {
    this.busy = true;
    this.cork();
    try {
      this.complete(state.tag, await completeLogin(this, state.user, state.master));
    } catch (err) {
      if (err instanceof ImapError) this.complete(state.tag, { status: err.status, code: err.code, text: err.message });
      else {
        this.log.error({ err, client: this.client, user: state.user.login }, 'imap: could not complete a handed-over login');
        this.complete(state.tag, { status: 'NO', code: 'SERVERBUG', text: 'Internal error, try again later' });
      }
    } finally {
      this.uncork();
      this.busy = false;
      this.afterCommand();
    }
  }

  capabilities(): string[] {
    const caps = ['IMAP4rev1'];
    // RFC 9051 beside RFC 3501: a client opts in with ENABLE IMAP4rev2 (§6.3.1), others keep IMAP4rev1.
    caps.push('IMAP4rev2');
    // RFC 6855: UTF-8 mailbox names, quoted strings and headers once the client enables it.
    caps.push('UTF8=ACCEPT');
    if (this.state === 'not-authenticated') {
      // RFC 3501 §6.2.1: STARTTLS only where it can be used — before TLS and before login.
      if (!this.secure && this.deps.secureContext) caps.push('STARTTLS');
      if (this.loginDisabled) caps.push('LOGINDISABLED');
      else {
        caps.push('AUTH=PLAIN', 'AUTH=LOGIN');
        // RFC 4752 Kerberos single sign-on, under the same TLS rule as passwords (auth/gssapi.ts).
        if (this.deps.auth.gssapiAvailable()) caps.push('AUTH=GSSAPI');
        caps.push('SASL-IR');
      }
    }
    caps.push('LITERAL+', 'ID', 'ENABLE', 'IDLE', 'NAMESPACE', 'UIDPLUS', 'MOVE', 'SPECIAL-USE', 'CHILDREN', 'UNSELECT', 'QUOTA', 'ACL', 'RIGHTS=texk', `APPENDLIMIT=${this.deps.appendLimit}`, 'ESEARCH', 'SEARCHRES', 'WITHIN', 'LIST-EXTENDED', 'LIST-STATUS', 'STATUS=SIZE', 'CREATE-SPECIAL-USE', 'MULTIAPPEND', 'I18NLEVEL=1', 'PREVIEW', 'CATENATE');
    // Message structure: SORT (RFC 5256), SORT=DISPLAY (RFC 5957), ESORT (RFC 5267), THREAD (RFC 5256), BINARY (RFC 3516).
    caps.push('SORT', 'SORT=DISPLAY', 'ESORT', 'THREAD=ORDEREDSUBJECT', 'THREAD=REFERENCES', 'THREAD=REFS', 'BINARY');
    // RFC 8514 SAVEDATE: FETCH SAVEDATE, SEARCH SAVEDBEFORE/SAVEDON/SAVEDSINCE/SAVEDATESUPPORTED.
    caps.push('SAVEDATE');
    // RFC 4467 URLAUTH, RFC 5524 URLAUTH=BINARY, RFC 5550 URL-PARTIAL: GENURLAUTH, RESETKEY, URLFETCH.
    if (this.deps.urlauth) caps.push('URLAUTH', 'URLAUTH=BINARY', 'URL-PARTIAL');
    // RFC 4978: announced in every state (the RFC's own example does) so clients that read only the greeting see it.
    caps.push('COMPRESS=DEFLATE');
    // RFC 5267 §4: updating searches (UPDATE, CANCELUPDATE) and PARTIAL, for SEARCH and for SORT.
    caps.push('CONTEXT=SEARCH', 'CONTEXT=SORT');
    // RFC 5465: unsolicited STATUS / LIST / EXISTS / EXPUNGE / FETCH for the mailboxes and events the client names.
    caps.push('NOTIFY');
    // RFC 2221: always, as Dovecot does; a login is referred only when its domain has an IMAP referral (login.ts).
    caps.push('LOGIN-REFERRALS');
    // RFC 7162: MODSEQs persisted in the folder index, VANISHED from its expunge history (condstore.ts).
    caps.push('CONDSTORE', 'QRESYNC');
    return caps;
  }

  /** What GENURLAUTH, RESETKEY and URLFETCH need; undefined when the server has no key store. */
  get urlauth(): UrlauthContext | undefined {
    const u = this.deps.urlauth;
    if (!u) return undefined;
    const names = new Set([this.deps.hostname.toLowerCase(), 'localhost', this.localAddress.toLowerCase()]);
    return {
      mailbox: this.deps.mailbox,
      keys: u.keys,
      findUser: u.findUser,
      resolveOwner: this.deps.resolveOwner,
      sharedGroups: this.deps.sharedGroups,
      hosts: (host) => names.has(host.toLowerCase()),
    };
  }

  // ---- I/O ----

  write(data: string | Buffer): void {
    if (this.closed || this.socket.destroyed) return;
    if (!this.deflate) {
      this.socket.write(data);
      return;
    }
    this.deflate.write(data);
    this.scheduleFlush();
  }

  /**
   * RFC 4978 §3: the server flushes at the end of each response, or the client waits for bytes zlib holds back. One
   * Z_SYNC_FLUSH per turn of the event loop covers every response written in it (untagged lines and the tagged one)
   * at the cost of one sync marker, instead of one per write.
   */
  private scheduleFlush() {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      const d = this.deflate;
      if (d && !d.writableEnded && !d.destroyed) d.flush(zlibConstants.Z_SYNC_FLUSH);
    });
  }

  /** The stream frames are read from: the socket, or the inflater once COMPRESS is active. */
  private get input(): Readable {
    return this.inflate ?? this.socket;
  }

  /**
   * Waits while the outgoing buffer is full, so a FETCH of a whole large folder does not pile up in memory. With
   * COMPRESS the deflater is piped into the socket: a full socket pauses it, and its own buffer then fills.
   */
  async drain(): Promise<void> {
    const socket = this.socket;
    const out = this.deflate ?? socket;
    if (this.closed || socket.destroyed || !out.writableNeedDrain) return;
    // A corked socket never drains: send what the command gathered, and gather again once it is out.
    const recork = this.corked !== undefined;
    this.uncork();
    await new Promise<void>((resolve) => {
      const done = () => {
        out.off('drain', done);
        out.off('close', done);
        socket.off('close', done);
        resolve();
      };
      out.on('drain', done);
      out.on('close', done);
      socket.on('close', done);
    });
    if (recork) this.cork();
  }

  /** The outgoing buffer is full: drain() would wait. Checked first so a FETCH of many messages awaits only then. */
  get mustDrain(): boolean {
    return !this.closed && !this.socket.destroyed && (this.deflate ?? this.socket).writableNeedDrain;
  }

  /** The connection is gone: a long response (a streamed literal) stops early. */
  get isClosed(): boolean {
    return this.closed || this.socket.destroyed;
  }

  /**
   * Cuts the connection now. For a response that cannot be completed (a literal whose bytes could not all be read
   * after its length was sent): anything written after it would be read as the literal's bytes.
   */
  abort(): void {
    this.onClose();
  }

  /** An untagged response: `* <text>` with optional data values appended. */
  untagged(text: string, ...values: Value[]): void {
    if (!values.length) return this.write(`* ${text}\r\n`);
    const parts: Buffer[] = [Buffer.from(`* ${text}`)];
    for (const v of values) parts.push(Buffer.from(' '), encode(v));
    parts.push(Buffer.from('\r\n'));
    this.write(Buffer.concat(parts));
  }

  continuation(text: string): void {
    this.write(`+ ${text}\r\n`);
    this.uncork();
  }

  /** The next line from the client (SASL responses, IDLE's DONE); null when the connection closed. */
  readLine(): Promise<Buffer | null> {
    this.uncork();
    return this.nextFrame();
  }

  /**
   * A command's replies (untagged lines, FETCH items, the tagged completion) are gathered while it runs and go to the
   * socket in one write when it completes, waits for the client, or has a socket buffer's worth (drain): with
   * TCP_NODELAY every write is its own syscall and TCP segment otherwise (profiled: most of FETCH's CPU time).
   */
  private cork(): void {
    if (this.deflate || this.corked || this.closed) return;
    this.corked = this.socket;
    this.corked.cork();
  }

  private uncork(): void {
    const s = this.corked;
    this.corked = undefined;
    s?.uncork();
  }

  bye(text: string): void {
    this.write(`* BYE ${text}\r\n`);
    this.end();
  }

  /** Closes after what was written is flushed; a client that does not close its side is cut off after 5 s. */
  end(): void {
    this.uncork();
    if (this.closed) return;
    const socket = this.socket;
    const deflate = this.deflate;
    this.cleanup();
    // The deflater ends the socket through the pipe once it has written its last block.
    if (deflate) deflate.end();
    else socket.end();
    setTimeout(() => socket.destroy(), 5000).unref();
  }

  private detach = () => {};
  private unregister?: () => void;

  private attach(socket: Socket) {
    const onData = (chunk: Buffer) => this.reader.push(chunk);
    const onError = (err: Error) => this.log.debug({ err, client: this.client }, 'imap socket error');
    const onClose = () => this.onClose();
    socket.on('data', onData);
    socket.on('error', onError);
    socket.on('close', onClose);
    this.detach = () => {
      socket.off('data', onData);
      socket.off('error', onError);
      socket.off('close', onClose);
    };
  }

  private onClose() {
    this.cleanup();
    this.socket.destroy();
    this.deflate?.destroy();
    this.inflate?.destroy();
  }

  private cleanup() {
    if (this.closed) return;
    this.closed = true;
    this.selected?.unwatch();
    this.notify?.stop();
    this.notify = undefined;
    this.unregister?.();
    this.unregister = undefined;
    if (this.user) {
      const key = this.user.login.toLowerCase();
      const n = (this.deps.userSessions.get(key) ?? 1) - 1;
      if (n > 0) this.deps.userSessions.set(key, n);
      else this.deps.userSessions.delete(key);
      this.log.info({ user: this.user.login, client: this.client, protocol: 'imap', result: 'ok' }, 'logout');
    }
    this.wake(null);
  }

  private wake(value?: null) {
    if (!this.frameWaiter) return;
    if (value === null) {
      const w = this.frameWaiter;
      this.frameWaiter = undefined;
      w(null);
      return;
    }
    const f = this.frames.shift();
    if (f) {
      const w = this.frameWaiter;
      this.frameWaiter = undefined;
      w(f);
    }
  }

  private nextFrame(): Promise<Buffer | null> {
    if (this.closed) return Promise.resolve(null);
    if (this.frames.length <= MAX_QUEUED / 2 && this.input.isPaused()) this.input.resume();
    const f = this.frames.shift();
    if (f) return Promise.resolve(f);
    return new Promise((resolve) => (this.frameWaiter = resolve));
  }

  private literalDecision(head: Buffer, size: number, nonSync: boolean): LiteralDecision {
    const { command } = peekCommand(head);
    // Before login only small literals: APPENDLIMIT is for users, not for anyone who can open a connection.
    if (command === 'APPEND' && this.state !== 'not-authenticated') {
      // RFC 7889: refuse before the client sends the message.
      if (size > this.deps.appendLimit) return { ok: false, status: 'NO', code: 'TOOBIG', text: 'Message too large' };
      // MULTIAPPEND (RFC 3502) holds every message of the command in memory until the last one arrives: bound the sum.
      if (head.length + size > Math.max(this.deps.appendLimit, MAX_MULTIAPPEND)) return { ok: false, status: 'NO', code: 'TOOBIG', text: 'Too much data in one APPEND' };
    } else if (head.length + size > MAX_LITERAL + 8192) {
      return { ok: false, status: 'BAD', code: 'TOOBIG', text: 'Literal too large' };
    }
    if (!nonSync) this.continuation('Ready for literal data');
    return { ok: true };
  }

  // ---- Commands ----

  private async run() {
    for (;;) {
      const frame = await this.nextFrame();
      if (!frame) return;
      await this.execute(frame);
      if (this.closed) return;
    }
  }

  private async execute(frame: Buffer) {
    let tag = '*';
    // Notifications sent between commands (NOTIFY) finish before the command starts, so none lands in its middle.
    await this.flushing;
    this.busy = true;
    try {
      const cmd = parseCommand(frame);
      tag = cmd.tag;
      if (!UNCORKED.has(cmd.command)) this.cork();
      const mod = COMMANDS.get(cmd.command);
      if (!mod || (cmd.uid && !mod.uid)) throw new ImapError('BAD', `Unknown command ${cmd.uid ? 'UID ' : ''}${cmd.command}`);
      if (!mod.states.includes(this.state)) throw new ImapError('BAD', `${cmd.command} not allowed now`);
      const result = (await mod.handle(this, cmd)) ?? {};
      // RFC 3501 §7.4.1: no EXPUNGE during FETCH, STORE, SEARCH (but UID variants may); SORT and THREAD answer with
      // sequence numbers too (RFC 5256 §3).
      const holdExpunge = !cmd.uid && ['FETCH', 'STORE', 'SEARCH', 'SORT', 'THREAD'].includes(cmd.command);
      // RFC 3501 §6.1.2 / §6.4.1 / §6.4.3: a poll (and EXPUNGE) reports what other sessions did, also those in
      // another worker process.
      if (this.selected && SETTLE.has(cmd.command)) await this.deps.mailbox.settle?.();
      if (cmd.command !== 'LOGOUT') await this.flushChanges(!holdExpunge);
      if (this.notify && cmd.command !== 'LOGOUT') await this.serial(() => this.notify?.pump());
      this.complete(tag, result);
      if (this.state === 'logout') this.end();
    } catch (err) {
      if (err instanceof ParseError) return this.complete(err.tag, { status: 'BAD', text: err.message });
      if (err instanceof ImapError) return this.complete(tag, { status: err.status, code: err.code, text: err.message });
      if (err instanceof FolderNotFound) {
        // RFC 3501 §6.3.11 / §6.4.7: TRYCREATE tells APPEND/COPY clients the target can be created.
        const command = peekCommand(frame).command;
        const code = ['APPEND', 'COPY', 'MOVE'].includes(command) ? 'TRYCREATE' : 'NONEXISTENT';
        return this.complete(tag, { status: 'NO', code, text: 'No such mailbox' });
      }
      if (err instanceof OverQuota) return this.complete(tag, { status: 'NO', code: 'OVERQUOTA', text: 'Quota exceeded' });
      // RFC 5530 §3 UNAVAILABLE: a store that cannot answer now (the cluster's PostgreSQL is unreachable) is
      // temporary, never SERVERBUG; the session stays and the next command may succeed.
      if (err instanceof TempFailure) {
        this.log.warn({ err, client: this.client, user: this.user?.login }, 'imap command failed temporarily');
        return this.complete(tag, { status: 'NO', code: 'UNAVAILABLE', text: 'Temporarily unavailable, try again later' });
      }
      // Errors a store may add beyond the contract, recognised by name so the IMAP side does not import a backend.
      const name = (err as Error | undefined)?.name;
      if (name === 'FolderExists') return this.complete(tag, { status: 'NO', code: 'ALREADYEXISTS', text: 'Mailbox already exists' });
      if (name === 'FolderRefused') return this.complete(tag, { status: 'NO', code: 'CANNOT', text: (err as Error).message });
      this.log.error({ err, client: this.client, user: this.user?.login }, 'imap command failed');
      this.complete(tag, { status: 'NO', code: 'SERVERBUG', text: 'Internal error, try again later' });
    } finally {
      this.uncork();
      // A STARTTLS or COMPRESS that did not change the transport (refused, bad syntax) stopped the reader: let the
      // client go on as before. A COMPRESS that did has restarted it already, and inflated data may be in it now.
      const command = peekCommand(frame).command;
      if (!this.secure && !this.closed && command === 'STARTTLS') this.reader.reset();
      if (!this.deflate && !this.closed && command === 'COMPRESS') this.reader.reset();
      this.busy = false;
      this.afterCommand();
    }
  }

  private complete(tag: string, c: Completion) {
    if (c.sent) return;
    this.write(`${tag} ${c.status ?? 'OK'}${c.code ? ` [${c.code}]` : ''} ${c.text ?? 'Completed'}\r\n`);
  }

  // ---- STARTTLS ----

  /** Sends the tagged OK, then the handshake; everything received before it has already been discarded. */
  startTls(tag: string): Promise<void> {
    const ctx = this.deps.secureContext;
    if (!ctx) throw new ImapError('BAD', 'TLS not available');
    this.frames = [];
    this.write(`${tag} OK Begin TLS negotiation now\r\n`);
    const raw = this.socket;
    this.detach();
    raw.setTimeout(0);
    const tlsSocket = new TLSSocket(raw, { isServer: true, secureContext: ctx });
    this.socket = tlsSocket;
    this.attach(tlsSocket);
    return new Promise((resolve) => {
      tlsSocket.once('secure', () => {
        this.secure = true;
        this.reader.reset();
        resolve();
      });
      tlsSocket.once('error', (err) => {
        this.log.debug({ err, client: this.client }, 'imap tls handshake failed');
        this.onClose();
        resolve();
      });
      tlsSocket.setTimeout(this.deps.idleTimeoutMs, () => {
        this.write('* BYE Autologout; idle for too long\r\n');
        this.end();
      });
    });
  }

  // ---- COMPRESS ----

  get compressed(): boolean {
    return this.deflate !== undefined;
  }

  /**
   * RFC 4978 §3: the tagged OK is the last thing sent uncompressed, and the client's first compressed byte follows
   * it; both directions switch before anything else can be read or written. Inside TLS when TLS is on (§4: the
   * socket here is already the TLSSocket after STARTTLS or on 993).
   */
  startCompression(tag: string): void {
    const socket = this.socket;
    socket.write(`${tag} OK DEFLATE active\r\n`);
    const deflate = createDeflateRaw(DEFLATE_OPTIONS);
    const inflate = createInflateRaw(INFLATE_OPTIONS);
    this.detach();
    const onError = (err: Error) => this.log.debug({ err, client: this.client }, 'imap socket error');
    const onClose = () => this.onClose();
    // A client that sends what is not a DEFLATE stream cannot be talked to any more.
    const onZlibError = (err: Error) => {
      this.log.debug({ err, client: this.client }, 'imap compression error');
      this.onClose();
    };
    const onData = (chunk: Buffer) => this.reader.push(chunk);
    socket.on('error', onError);
    socket.on('close', onClose);
    deflate.on('error', onZlibError);
    inflate.on('error', onZlibError);
    inflate.on('data', onData);
    deflate.pipe(socket);
    socket.pipe(inflate);
    this.deflate = deflate;
    this.inflate = inflate;
    this.reader.reset();
    this.detach = () => {
      socket.off('error', onError);
      socket.off('close', onClose);
      inflate.off('data', onData);
      socket.unpipe(inflate);
      deflate.unpipe(socket);
    };
  }

  // ---- Login ----

  /** Counts the session against the user's limit; false when the user already has too many. */
  claimUserSlot(user: UserEntry): boolean {
    const key = user.login.toLowerCase();
    const n = this.deps.userSessions.get(key) ?? 0;
    if (n >= this.deps.maxPerUser) return false;
    this.deps.userSessions.set(key, n + 1);
    return true;
  }

  loggedIn(user: UserEntry, master?: UserEntry): void {
    this.user = user;
    // RFC 3501 §7.1.5: the server ends the session with BYE when it must close it (here: the account was disabled,
    // expired, locked out or removed in AD while the session was open).
    this.unregister = this.deps.sessions?.add(user.login, { protocol: 'imap', close: (reason) => this.bye(reason) });
    this.owner = this.deps.resolveOwner(user);
    this.state = 'authenticated';
    this.log.info(
      { user: user.login, ...(master ? { master: master.login } : {}), client: this.client, protocol: 'imap', result: 'ok' },
      master ? `login: master ${master.login} as user ${user.login}` : 'login',
    );
  }

  loginFailed(login: string, result: string): void {
    this.log.info({ user: login, client: this.client, protocol: 'imap', result }, 'login failed');
  }

  // ---- Selected folder ----

  /** Loads what the login gives access to beyond the own mailbox (shared folders of the user's groups). */
  async loadAccess(): Promise<void> {
    if (this.user && this.deps.sharedGroups) this.sharedGroups = await this.deps.sharedGroups(this.user);
    // The store creates a user's missing special-use folders (Sent, Drafts, Junk, Trash) when it lists them: doing
    // it at login means a client's first APPEND to Sent or SELECT of Drafts finds them (not only after a LIST).
    if (this.owner) {
      await this.deps.mailbox.listFolders(this.owner).catch((err: unknown) => this.log.warn({ err, user: this.user?.login }, 'imap: could not list folders at login'));
    }
  }

  /** Resolves a client mailbox name; an unknown shared group is an unknown mailbox (FolderNotFound). */
  resolve(name: string): MailboxRef {
    const prefix = SHARED_PREFIX + '/';
    if (this.sharedGroups.length && name.toLowerCase().startsWith(prefix.toLowerCase())) {
      const rest = name.slice(prefix.length);
      const slash = rest.indexOf('/');
      const groupPart = slash < 0 ? rest : rest.slice(0, slash);
      // Group names of any case (the seed's "group names of any case work").
      const group = this.sharedGroups.find((g) => g.toLowerCase() === groupPart.toLowerCase());
      if (!group) throw new FolderNotFound(name);
      const folder = slash < 0 ? 'INBOX' : rest.slice(slash + 1);
      return { name, owner: { kind: 'shared', group }, folder: folder || 'INBOX', shared: group };
    }
    return { name, owner: this.owner!, folder: name };
  }

  /** The client-visible name of a folder of a shared group. */
  sharedName(group: string, folder: string): string {
    return folder === 'INBOX' ? `${SHARED_PREFIX}/${group}` : `${SHARED_PREFIX}/${group}/${folder}`;
  }

  async select(name: string, readOnly: boolean): Promise<SelectedFolder> {
    this.unselect();
    const ref = this.resolve(name);
    const { owner } = ref;
    const mailbox = this.deps.mailbox;
    // The store's summary when it has one: SELECT then answers from counts and UIDs, and the messages are read on
    // the first command that needs them (lazyView).
    const summary = mailbox.selectFolder ? await mailbox.selectFolder(owner, ref.folder) : undefined;
    const state = summary ? undefined : await mailbox.openFolder(owner, ref.folder);
    const info = summary ?? state!;
    // RFC 3501 §6.3.1/§6.3.2: SELECT claims the recent messages for this session; EXAMINE only looks, so the next
    // SELECT still sees them as recent.
    const firstRecent = await mailbox.firstRecentUid(owner, ref.folder, readOnly ? undefined : info.uidNext);
    const recent = new Set<number>();
    if (summary) {
      const uids = summary.uids;
      for (let i = firstIndexAtLeast(uids, firstRecent); i < uids.length; i++) recent.add(uids[i]!);
    } else for (const m of state!.messages) if (m.uid >= firstRecent) recent.add(m.uid);
    const sel: SelectedFolder = {
      name,
      owner,
      folder: ref.folder,
      shared: ref.shared,
      readOnly,
      uidValidity: info.uidValidity,
      uidNext: info.uidNext,
      highestModseq: summary ? summary.modseq : state!.modseq > 0 && state!.messages.every((m) => m.modseq !== undefined) ? state!.modseq : 0,
      // No copy per message (a 100,000-message folder spent a fifth of its SELECT there): see own().
      messages: state?.messages ?? [],
      opened: summary ? { exists: summary.uids.length, firstUnseen: summary.firstUnseen, keywords: summary.keywords } : openedOf(state!.messages),
      owned: new WeakSet(),
      recent,
      keywords: new Set(),
      copied: new Set(),
      saved: new Set(),
      contexts: new Map(),
      changed: new Set(),
      pending: [],
      unwatch: () => {},
    };
    if (summary) lazyView(sel, summary);
    sel.unwatch = this.deps.mailbox.watch(owner, ref.folder, (change) => {
      if (this.selected !== sel) return;
      sel.pending.push(change);
      if (this.idling) void this.flushChanges(true);
      else if (!this.busy && this.notify?.wantsNow(change)) this.flushNow();
    });
    this.selected = sel;
    this.state = 'selected';
    return sel;
  }

  unselect(): void {
    if (this.selected) this.selected.unwatch();
    this.selected = undefined;
    if (this.state === 'selected') this.state = 'authenticated';
  }

  /** Sends the queued changes of the selected folder as untagged responses (serialised: IDLE may call concurrently). */
  flushChanges(allowExpunge: boolean): Promise<void> {
    return this.serial(() => this.doFlush(allowExpunge));
  }

  /** Runs `fn` after every flush and notification before it: one writer of unsolicited responses at a time. */
  private serial(fn: () => Promise<void> | void): Promise<void> {
    const run = this.flushing.then(fn);
    this.flushing = run.catch((err) => this.log.warn({ err, client: this.client }, 'imap: could not refresh the folder'));
    return this.flushing;
  }

  // ---- NOTIFY (RFC 5465; notify.ts) ----

  /** NOTIFY SET replaces what was set before; NOTIFY NONE (null) ends it. */
  async setNotify(spec: NotifySpec | null): Promise<void> {
    this.notify?.stop();
    this.notify = undefined;
    if (!spec) return;
    const n = new NotifyState(this, spec);
    this.notify = n;
    await n.start();
  }

  /** Bytes written but not yet taken by the client. */
  private get backlog(): number {
    return this.socket.writableLength + (this.deflate?.writableLength ?? 0);
  }

  /**
   * RFC 5465 §5.8: a client that does not read what it asked to hear would make us buffer without bound. Past the
   * limit it is told once, and NOTIFY is off as after NOTIFY NONE; the base protocol's updates go on.
   */
  private overflowed(): boolean {
    if (!this.notify || this.backlog <= (this.deps.notifyBacklogBytes ?? NOTIFY_BACKLOG_BYTES)) return false;
    this.notify.stop();
    this.notify = undefined;
    this.untagged('OK [NOTIFICATIONOVERFLOW] Too many notifications; NOTIFY is off');
    return true;
  }

  /** NOTIFY found something for a mailbox that is not selected: sent now, or at the end of the running command. */
  notificationsPending(): void {
    if ((this.busy && !this.idling) || this.closed || this.overflowed()) return;
    void this.serial(() => this.notify?.pump());
  }

  /** RFC 5465 §6.1: with "selected" events go out at once, "selected-delayed" keeps EXPUNGE for a command. */
  private flushNow(): void {
    const group = this.notify?.selectedGroup;
    if (!group || this.closed || this.overflowed()) return;
    const delayed = group.filter.kind === 'selected' && group.filter.delayed;
    void this.flushChanges(!delayed);
  }

  /** What arrived while the command ran and is to be told now that it is done. */
  private afterCommand(): void {
    const n = this.notify;
    if (!n || this.closed) return;
    if (n.pending) this.notificationsPending();
    if (this.selected?.pending.some((c) => n.wantsNow(c))) this.flushNow();
  }

  private async doFlush(allowExpunge: boolean) {
    const sel = this.selected;
    if (!sel || this.closed) return;
    const changes = sel.pending.splice(0);
    const held: FolderChange[] = [];
    let exists = this.checkExists;
    this.checkExists = false;
    for (const ch of changes) {
      if (ch.kind === 'exists') exists = true;
      else if (ch.kind === 'expunge') {
        if (!allowExpunge) {
          held.push(ch);
          continue;
        }
        this.reportExpunge(ch.uids, false);
        noteModseq(sel, ch.modseq);
      } else {
        const i = this.indexOfUid(ch.uid);
        if (i < 0) continue;
        const m = this.own(sel.messages[i]);
        // With CONDSTORE a change the session has not shown yet may leave the flags as they were (-FLAGS then
        // +FLAGS by another session): its new MODSEQ is news all the same (RFC 7162 §3.1.4, §3.1.11).
        const newer = ch.modseq !== undefined && ch.modseq > (m.modseq ?? 0);
        const stale = sel.stale?.delete(ch.uid) ?? false;
        if (sameFlags(m.flags, ch.flags) && !(newer && condstoreEnabled(this)) && !stale) {
          if (newer) m.modseq = ch.modseq;
          continue;
        }
        this.setFlags(m, ch.flags);
        if (newer) m.modseq = ch.modseq;
        noteModseq(sel, m.modseq);
        this.announceKeywords(m.flags);
        // RFC 7162 §3.1.4: once CONDSTORE is enabled every unsolicited FETCH carries MODSEQ.
        this.untagged(`${i + 1} FETCH (UID ${m.uid} FLAGS (${this.flagsOf(m).join(' ')})${condstoreEnabled(this) ? ` ${modseqItem(m)}` : ''})`);
      }
    }
    sel.pending.unshift(...held);
    if (exists) {
      const state = await this.deps.mailbox.openFolder(sel.owner, sel.folder);
      if (this.selected !== sel) return;
      const maxUid = sel.messages.length ? sel.messages[sel.messages.length - 1].uid : 0;
      const added = state.messages.filter((m) => m.uid > maxUid);
      sel.uidNext = state.uidNext;
      if (added.length) {
        // RFC 3501 §2.3.2: the first session to be told about a message sees it as recent (a read-write one claims it).
        const firstRecent = await this.deps.mailbox.firstRecentUid(sel.owner, sel.folder, sel.readOnly ? undefined : state.uidNext);
        if (this.selected !== sel) return;
        for (const m of added) if (m.uid >= firstRecent) sel.recent.add(m.uid);
        for (const m of added) sel.messages.push(m);
        for (const m of added) noteModseq(sel, m.modseq);
        for (const m of added) this.announceKeywords(m.flags);
        this.untagged(`${sel.messages.length} EXISTS`);
        // RFC 3501 §7.3.2: RECENT accompanies EXISTS; RFC 9051 has neither \Recent nor RECENT.
        if (!this.rev2) this.untagged(`${sel.recent.size} RECENT`);
        // RFC 5465 §5.2: MessageNew's fetch-att, for the new messages, right after the EXISTS that numbers them.
        const fetch = this.notify?.selectedGroup?.fetch;
        if (fetch) {
          const refs = added.map((m) => this.indexOfUid(m.uid)).filter((i) => i >= 0).map((i) => ({ seq: i + 1, meta: sel.messages[i] }));
          await sendFetch(this, refs, fetch, { stream: false });
        }
        if (sel.contexts.size) for (const m of added) sel.changed.add(m.uid);
      }
    }
    // RFC 5267 §4.3: ADDTO / REMOVEFROM after the EXISTS and FETCH they follow from, so their numbers are known.
    if (sel.contexts.size && sel.changed.size && this.selected === sel) {
      const changed = [...sel.changed];
      sel.changed.clear();
      await updateContexts(this, changed);
    }
  }

  /**
   * A message's flags changed in this session's view (STORE, FETCH's implicit \Seen, another session's change).
   * Returns the session's own object for it (own()), which the caller goes on with.
   */
  setFlags(meta: MessageMeta, flags: string[]): MessageMeta {
    const m = this.own(meta);
    m.flags = [...flags];
    const sel = this.selected;
    if (sel?.contexts.size) sel.changed.add(m.uid);
    return m;
  }

  /**
   * The message of the view as an object this session may change: the store's objects are shared (FolderState), so
   * the first change copies it into the view in its place (copy on write). A message no longer in the view gets a
   * copy that goes nowhere.
   */
  own(meta: MessageMeta): MessageMeta {
    const sel = this.selected;
    if (sel?.owned.has(meta)) return meta;
    const copy = { ...meta };
    if (!sel) return copy;
    sel.owned.add(copy);
    const i = this.indexOfUid(meta.uid);
    if (i >= 0 && sel.messages[i] === meta) sel.messages[i] = copy;
    return copy;
  }

  /**
   * RFC 5267 §4.3: keeps the result of SEARCH / SORT RETURN (UPDATE). A session keeping too many already gets the
   * result without updates: `* NO [NOUPDATE "tag"]`. A tag in use is replaced (the client reused it).
   */
  addSearchContext(ctx: SearchContext): void {
    const sel = this.selected;
    if (!sel) return;
    if (!sel.contexts.has(ctx.tag) && sel.contexts.size >= MAX_SEARCH_CONTEXTS) {
      this.untagged(`NO [NOUPDATE ${JSON.stringify(ctx.tag)}] Too many updating searches`);
      return;
    }
    sel.contexts.set(ctx.tag, ctx);
  }

  /**
   * Every expunge the client hears of goes through here: from this session's EXPUNGE, CLOSE, MOVE, and from other
   * sessions through the watch. Updating searches hear REMOVEFROM first, while the sequence numbers they name are
   * still valid (RFC 5267 §4.3), then each message is removed from the view and reported. `silent` (CLOSE) only
   * removes. With QRESYNC enabled this is where VANISHED replaces EXPUNGE (RFC 7162 §3.2.10).
   */
  reportExpunge(uids: number[], silent: boolean): void {
    const sel = this.selected;
    if (!sel) return;
    const sorted = [...uids].sort((a, b) => a - b).filter((uid) => this.indexOfUid(uid) >= 0);
    if (!sorted.length) return;
    if (!silent && sel.contexts.size) {
      const gone = new Set(sorted);
      for (const ctx of sel.contexts.values()) {
        const members = ctx.result.filter((u) => gone.has(u));
        if (members.length) removeFromContext(this, ctx, members);
      }
    }
    // Descending sequence numbers would also be valid; ascending with re-computed indexes is what clients expect.
    const vanished: number[] = [];
    for (const uid of sorted) {
      const i = this.indexOfUid(uid);
      if (i < 0) continue;
      sel.messages.splice(i, 1);
      sel.recent.delete(uid);
      sel.changed.delete(uid);
      if (silent) continue;
      if (qresyncEnabled(this)) vanished.push(uid);
      else this.untagged(`${i + 1} EXPUNGE`);
    }
    if (vanished.length) this.untagged(`VANISHED ${formatSequenceSet(vanished)}`);
    if (silent && sel.contexts.size) {
      const gone = new Set(sorted);
      for (const ctx of sel.contexts.values()) ctx.result = ctx.result.filter((u) => !gone.has(u));
    }
  }

  /**
   * A message's flags as this session shows them: \Recent (never stored) first, as Dovecot does. IMAP4rev2 has no
   * \Recent (RFC 9051 Appendix E); such a session still claims recent messages at SELECT, so that rev1 sessions
   * agree on who saw them first.
   */
  flagsOf(meta: MessageMeta): string[] {
    return !this.rev2 && this.selected?.recent.has(meta.uid) ? ['\\Recent', ...meta.flags] : meta.flags;
  }

  /** FLAGS and PERMANENTFLAGS of the selected folder with every keyword announced so far (SELECT and later). */
  sendFlags(): void {
    const sel = this.selected;
    if (!sel) return;
    const flags = [...PERMANENT_FLAGS, ...sel.keywords];
    this.untagged(`FLAGS (${flags.join(' ')})`);
    // RFC 3501 §7.1: "\*" = new keywords may be created; a read-only session may change nothing.
    this.untagged(`OK [PERMANENTFLAGS (${sel.readOnly ? '' : [...flags, '\\*'].join(' ')})] Flags permitted`);
  }

  /** RFC 3501 §7.2.6: a keyword is announced in FLAGS before a FETCH shows it; new ones trigger FLAGS again. */
  announceKeywords(flags: string[]): void {
    const sel = this.selected;
    if (!sel) return;
    let fresh = false;
    for (const f of flags) {
      if (f.startsWith('\\') || sel.keywords.has(f)) continue;
      sel.keywords.add(f);
      fresh = true;
    }
    if (fresh) this.sendFlags();
  }

  indexOfUid(uid: number): number {
    const msgs = this.selected?.messages ?? [];
    let lo = 0;
    let hi = msgs.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const u = msgs[mid].uid;
      if (u === uid) return mid;
      if (u < uid) lo = mid + 1;
      else hi = mid - 1;
    }
    return -1;
  }

  /**
   * Removes expunged UIDs from the view and tells the client (EXPUNGE, CLOSE is silent). With QRESYNC enabled it is
   * one `VANISHED uids` instead of an EXPUNGE per message (RFC 7162 §3.2.10).
   */
  applyExpunge(uids: number[], silent: boolean): void {
    this.reportExpunge(uids, silent);
  }
}

/** What SELECT reports, from the messages (a store without selectFolder). */
function openedOf(messages: MessageMeta[]): SelectedFolder['opened'] {
  const keywords = new Set<string>();
  for (const m of messages) for (const f of m.flags) if (!f.startsWith('\\')) keywords.add(f);
  const i = messages.findIndex((m) => !m.flags.includes('\\Seen'));
  return { exists: messages.length, firstUnseen: i + 1, keywords: [...keywords] };
}

/** The index of the first UID >= `uid` in ascending `uids` (its length when none). */
function firstIndexAtLeast(uids: Uint32Array, uid: number): number {
  let lo = 0;
  let hi = uids.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (uids[mid]! < uid) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Makes `sel.messages` read on first use: the view as SELECT numbered it (summary.uids), with each message as the
 * store has it then. A message expunged since has no row any more: it stays in the view (its expunge is reported
 * through the watch, as for any view) with no flags and no size. One that changed since SELECT is marked stale
 * (its MODSEQ is above the summary's), so that the flag change the watch brings is shown although the view already
 * holds the new flags. Messages added since are left out: the watch's EXISTS adds them.
 */
function lazyView(sel: SelectedFolder, from: FolderSummary): void {
  let view: MessageMeta[] | undefined;
  // Dropped once read: the UIDs of a big folder are not kept twice.
  let summary: FolderSummary | undefined = from;
  Object.defineProperty(sel, 'messages', {
    enumerable: true,
    configurable: true,
    get(): MessageMeta[] {
      if (view || !summary) return view ?? [];
      const uids = summary.uids;
      const now = summary.messages();
      const out = new Array<MessageMeta>(uids.length);
      let j = 0;
      for (let i = 0; i < uids.length; i++) {
        const uid = uids[i]!;
        while (j < now.length && now[j]!.uid < uid) j++;
        const m = now[j];
        if (m?.uid === uid) {
          out[i] = m;
          if (m.modseq !== undefined && m.modseq > summary.modseq) (sel.stale ??= new Set()).add(uid);
        } else out[i] = { uid, size: 0, flags: [], internalDate: new Date(0), modseq: summary.modseq };
      }
      view = out;
      summary = undefined;
      return view;
    },
    set(v: MessageMeta[]) {
      view = v;
    },
  });
}

function sameFlags(a: string[], b: string[]): boolean {
  if (a.length !== b.length) return false;
  const s = new Set(a);
  return b.every((f) => s.has(f));
}

/**
 * Stops a socket's handle reading at once (libuv readStop), as net.Socket's own pause does in its onread mode: a
 * socket about to be sent to another process must not read a byte more here (ImapSession.handOff, workers.ts).
 * False when the socket has no such handle (then it is not sent).
 */
export function stopReading(socket: Socket): boolean {
  const handle = (socket as unknown as { _handle?: { reading?: boolean; readStop?: () => number } | null })._handle;
  if (!handle || typeof handle.readStop !== 'function') return false;
  handle.reading = false;
  return handle.readStop() === 0;
}
