/**
 * The static configuration file (DESIGN.md §7): what an operator sets once. Defaults live here and only here;
 * the JSON Schema in schema/config.schema.json is generated from this file (`postern config schema`).
 */
import { z } from 'zod';
import { sieveDeliverySchema } from '../sieve/config.js';

const cacheSchema = z
  .object({
    ttlSeconds: z.number().int().min(0).default(60).describe('How long a found entry is reused'),
    negativeTtlSeconds: z
      .number()
      .int()
      .min(0)
      .default(10)
      .describe('How long "no such address" is reused; kept short so a new AD address works quickly'),
    max: z.number().int().min(1).default(50000).describe('Most entries kept'),
    staleIfErrorSeconds: z
      .number()
      .int()
      .min(0)
      .default(3600)
      .describe('While every DC is unreachable, a found entry this recently fetched is still used'),
  })
  .strict();

const watchSchema = z
  .object({
    enabled: z.boolean().default(true).describe('Follow AD changes (uSNChanged polling) so that they apply within seconds'),
    pollIntervalMs: z
      .number()
      .int()
      .min(100)
      .default(1000)
      .describe('How often the watched DC is asked for its highestCommittedUSN (one base search of the rootDSE)'),
    retrySeconds: z.number().int().min(1).default(5).describe('After the watched DC fails, how long before it is tried again'),
    failoverLookbackSeconds: z
      .number()
      .int()
      .min(0)
      .default(900)
      .describe('On a move to another DC, objects changed (whenChanged) this long before the last poll are re-read'),
    deletedSweepSeconds: z
      .number()
      .int()
      .min(0)
      .default(60)
      .describe('When the service account may not read CN=Deleted Objects: how often cached objects are checked for deletion (0: never)'),
  })
  .strict();

export const directorySchema = z
  .object({
    type: z.enum(['ldap', 'ldif']).default('ldif').describe('ldap: Active Directory; ldif: an AD-shaped LDIF file'),
    file: z.string().optional().describe('LDIF file (type ldif); relative to the config file'),
    urls: z
      .array(z.string().regex(/^ldaps?:\/\/[^/]+\/?$/, 'an ldap:// or ldaps:// URL'))
      .min(1)
      .optional()
      .describe('Domain controllers, tried in order (failover)'),
    startTls: z.boolean().default(false).describe('Use StartTLS on ldap:// URLs (AD refuses simple binds without TLS)'),
    tls: z
      .object({
        caFile: z.string().optional().describe('PEM file of the CA that signed the DC certificates'),
        rejectUnauthorized: z.boolean().default(true),
        servername: z.string().optional().describe('Name to check in the DC certificate, when the URL uses an address'),
      })
      .strict()
      .prefault({}),
    baseDN: z.string().optional().describe('Where users and groups are searched, e.g. DC=corp,DC=example'),
    bindDN: z.string().optional().describe('Service account used for searches'),
    bindPassword: z.string().optional(),
    bindPasswordFile: z.string().optional().describe('File holding the service account password (first line)'),
    userPrincipalNameIsAddress: z.boolean().default(true).describe('userPrincipalName is also a mail address'),
    groupDelivery: z
      .enum(['distribution', 'shared'])
      .default('distribution')
      .describe('Mail-enabled groups are distribution lists or shared folders'),
    cache: cacheSchema.prefault({}),
    watch: watchSchema.prefault({}),
    timeoutMs: z.number().int().min(100).default(5000).describe('Per LDAP operation'),
    connectTimeoutMs: z.number().int().min(100).default(3000),
    dcRetrySeconds: z.number().int().min(1).default(30).describe('A DC that failed is skipped this long'),
    pageSize: z.number().int().min(1).max(1000).default(500).describe('Paged search size (AD MaxPageSize is 1000)'),
  })
  .strict()
  .superRefine((d, ctx) => {
    if (d.type === 'ldif' && !d.file) {
      ctx.addIssue({ code: 'custom', path: ['file'], message: 'required when type is ldif' });
    }
    if (d.type === 'ldap') {
      for (const key of ['urls', 'baseDN', 'bindDN'] as const) {
        if (!d[key]) ctx.addIssue({ code: 'custom', path: [key], message: 'required when type is ldap' });
      }
      if (d.bindPassword === undefined && d.bindPasswordFile === undefined) {
        ctx.addIssue({ code: 'custom', path: ['bindPassword'], message: 'bindPassword or bindPasswordFile is required' });
      }
    }
  });

export const authSchema = z
  .object({
    method: z.enum(['ldap-bind', 'kerberos']).default('ldap-bind'),
    realm: z.string().optional().describe('Kerberos realm (method kerberos); the KDC comes from the system krb5.conf'),
    service: z
      .string()
      .optional()
      .describe('Kerberos service a ticket is asked for; default krbtgt/REALM'),
    failureDelayMs: z.number().int().min(0).default(2000).describe('Delay before answering a failed login'),
    failureDelayMaxMs: z.number().int().min(0).default(15000).describe('The delay doubles per failure up to this'),
    masterSeparator: z.string().min(1).max(4).default('*').describe('In "john*admin", the separator'),
    masterLogin: z.string().min(1).default('admin').describe('The master account (its password opens any mailbox)'),
    kerberos: z
      .object({
        keytab: z
          .string()
          .min(1)
          .describe('Keytab with the keys of imap/HOST, pop/HOST, smtp/HOST and sieve/HOST (ManageSieve); SASL GSSAPI (Kerberos single sign-on) is offered while it is readable'),
        hostname: z
          .string()
          .min(1)
          .optional()
          .describe('HOST of the service principals; default the server hostname (what clients connect to)'),
        realm: z.string().min(1).optional().describe('Realm whose users may log in with a ticket; default auth.realm'),
      })
      .strict()
      .optional()
      .describe('SASL GSSAPI (RFC 4752) on IMAP, POP3 and SMTP submission, independent of auth.method'),
  })
  .strict()
  .superRefine((a, ctx) => {
    if (a.method === 'kerberos' && !a.realm) ctx.addIssue({ code: 'custom', path: ['realm'], message: 'required when method is kerberos' });
    if (a.kerberos && !a.kerberos.realm && !a.realm) {
      ctx.addIssue({ code: 'custom', path: ['kerberos', 'realm'], message: 'auth.kerberos.realm or auth.realm is required with auth.kerberos' });
    }
  });

const listenerAddress = () => ({
  port: (port: number, what: string) => z.number().int().min(0).max(65535).default(port).describe(`${what}; 0 picks a free port`),
  host: z
    .string()
    .optional()
    .describe('Address to listen on; default all addresses (the embedded defaults, with no config file, listen on 127.0.0.1 only)'),
});

const listener = (port: number, what: string) =>
  z
    .object({ port: listenerAddress().port(port, what), host: listenerAddress().host })
    .strict();

/**
 * The pregreet test (Postfix postscreen's postscreen_greet_wait / pregreet check): the greeting waits `waitMs`, and a
 * client that talks before it is refused with 554 5.5.1 and disconnected (RFC 5321 §4.3.1: the client waits for the
 * greeting; bots that do not are a well-known spam signature). A client that passed is not tested again for
 * `ttlHours` (postscreen_greet_ttl). Never applied to smtp.relayFrom and smtp.trustedNetworks clients.
 */
const pregreet = (waitMs: number) =>
  z
    .object({
      waitMs: z
        .number()
        .int()
        .min(0)
        .max(30_000)
        .default(waitMs)
        .describe(`Milliseconds the greeting waits to catch clients that talk first; 0 greets at once (default ${waitMs})`),
      ttlHours: z.number().min(0).default(24).describe('How long a client that passed is greeted at once (0: tested on every connection)'),
    })
    .strict();

const smtpListener = (port: number, what: string, waitMs: number) =>
  z
    .object({
      port: listenerAddress().port(port, what),
      host: listenerAddress().host,
      pregreet: pregreet(waitMs)
        .prefault({})
        .describe('Early-talker test before the greeting (postscreen pregreet); off on submission, skipped for relay/trusted networks'),
    })
    .strict();

/**
 * Listeners default to unprivileged ports so that `npm start` works without root; a production config sets the
 * IANA ports (25, 587, 465, 143, 993, 110, 995, 4190). `false` leaves a listener out.
 */
export const listenersSchema = z
  .object({
    smtp: z.union([smtpListener(2525, 'SMTP for other servers (production: 25)', 300), z.literal(false)]).prefault({}),
    submission: z.union([smtpListener(2587, 'Submission with STARTTLS (production: 587)', 0), z.literal(false)]).prefault({}),
    smtps: z.union([smtpListener(2465, 'Submission with implicit TLS (production: 465)', 0), z.literal(false)]).prefault({}),
    imap: z.union([listener(2143, 'IMAP with STARTTLS required before login (production: 143)'), z.literal(false)]).prefault({}),
    imaps: z.union([listener(2993, 'IMAP with implicit TLS (production: 993)'), z.literal(false)]).prefault({}),
    pop3: z.union([listener(2110, 'POP3 with STLS required before login (production: 110)'), z.literal(false)]).prefault({}),
    pop3s: z.union([listener(2995, 'POP3 with implicit TLS (production: 995)'), z.literal(false)]).prefault({}),
    managesieve: z
      .union([listener(24190, 'ManageSieve (RFC 5804) for Sieve filter editors, STARTTLS required before login (production: 4190)'), z.literal(false)])
      .prefault({}),
    admin: z
      .union([listener(8443, 'Admin HTTP API over TLS, /metrics, /healthz, /readyz (production: 8443; restrict to IT networks)'), z.literal(false)])
      .prefault({}),
    http: z
      .union([listener(8080, 'Plain HTTP for client autoconfiguration: Thunderbird autoconfig; Outlook Autodiscover is redirected to https (production: 80)'), z.literal(false)])
      .prefault({}),
    https: z
      .union([listener(8444, 'HTTPS for client autoconfiguration: Outlook Autodiscover (Outlook takes settings only over HTTPS) and Thunderbird autoconfig, with the tls certificate (production: 443)'), z.literal(false)])
      .prefault({}),
  })
  .strict();

export const smtpLimitsSchema = z
  .object({
    maxRecipients: z.number().int().min(1).default(1000).describe('Recipients per message (RFC 5321 §4.5.3.1.8 asks for at least 100)'),
    maxClients: z.number().int().min(1).default(500).describe('SMTP connections at once, all listeners together'),
    maxLineLength: z.number().int().min(1000).default(4096).describe('Longest command line (RFC 5321 §4.5.3.1.4: at least 512)'),
    errorLimit: z.number().int().min(1).default(10).describe('Errors in one session before it is disconnected (Postfix smtpd_hard_error_limit)'),
    socketTimeoutSeconds: z.number().int().min(10).default(300).describe('Idle time before a session is closed (RFC 5321 §4.5.3.2.7: 5 minutes)'),
    workers: z
      .number()
      .int()
      .min(0)
      .max(64)
      .default(0)
      .describe(
        'SMTP worker processes for the smtp (port 25) listener: the main process keeps the listener and hands each connection to the worker with the fewest sessions, which runs the whole SMTP session and writes the queue itself; delivery, submission and smtps stay in the main process. 0 serves SMTP in the main process',
      ),
  })
  .strict();

export const queueSchema = z
  .object({
    retryMinSeconds: z.number().min(0.01).default(300).describe('First retry after a temporary failure (Postfix minimal_backoff_time)'),
    retryMaxSeconds: z.number().min(0.01).default(4000).describe('Longest wait between retries (Postfix maximal_backoff_time)'),
    concurrency: z.number().int().min(1).default(20).describe('Deliveries at once'),
    scanIntervalSeconds: z.number().min(0.05).default(5).describe('How often the spool is re-read for changes made by the CLI'),
    leaseSeconds: z
      .number()
      .min(0.5)
      .default(60)
      .describe(
        'state postgres: how long a node\'s claim on a message it delivers lasts (renewed every third of it while the delivery runs); a node that dies holding claims leaves its messages to the other nodes after this',
      ),
  })
  .strict();

/**
 * clamd (DESIGN.md §7): the Unix socket when `socket` is set, else TCP to host/port. With neither, Debian's clamd
 * socket. Scanning uses INSTREAM, so clamd needs no access to postern's files.
 */
export const clamavSchema = z
  .object({
    socket: z
      .string()
      .optional()
      .describe('clamd LocalSocket, e.g. /run/clamav/clamd.ctl (Debian); used when set. Default /run/clamav/clamd.ctl when host and port are absent too'),
    host: z.string().optional().describe('clamd TCPAddr, when socket is not set; default 127.0.0.1 when only port is given'),
    port: z.number().int().min(1).max(65535).optional().describe('clamd TCPSocket, when socket is not set; default 3310 when only host is given'),
    timeoutMs: z
      .number()
      .int()
      .min(100)
      .default(30000)
      .describe('Longest wait for a scan; past it the message is handled as filter.antivirus.onFailure says'),
  })
  .strict();

/** The admin HTTP API (src/admin): who may use it. */
export const adminSchema = z
  .object({
    group: z
      .string()
      .min(1)
      .default('Domain Admins')
      .describe('AD group whose members (nested membership counts) may use the admin API with their AD password'),
    tokensFile: z
      .string()
      .optional()
      .describe('API tokens for automation: one per line, "NAME SHA256HEX" or "SHA256HEX" (sha256 of the token); relative to the config file'),
    webSessionMinutes: z
      .number()
      .int()
      .min(1)
      .max(24 * 60)
      .default(30)
      .describe('The web admin page: a login session ends after this many minutes without a request (and after 8 hours in any case)'),
  })
  .strict();

/** spamd, spoken to with our own SPAMC/1.5 client (src/filters/spamc.ts). */
export const spamassassinSchema = z
  .object({
    host: z.string().default('127.0.0.1').describe('spamd address (its --listen)'),
    port: z.number().int().min(1).max(65535).default(783).describe('spamd port'),
    timeoutMs: z
      .number()
      .int()
      .min(100)
      .default(30000)
      .describe('Longest wait for a score or a TELL; past it the message is handled as filter.spam.onFailure says'),
  })
  .strict();

/** Pigeonhole's sieve_quota_max_scripts, sieve_max_script_size and sieve_quota_max_storage (0 = no limit). */
export const managesieveSchema = z
  .object({
    maxScripts: z.number().int().min(0).default(50).describe('Sieve scripts one mailbox may store (0: no limit)'),
    maxScriptBytes: z
      .number()
      .int()
      .min(0)
      .default(1024 * 1024)
      .describe('Largest script in bytes, as Pigeonhole\'s sieve_max_script_size (default 1 MiB; 0: no limit)'),
    maxStorageBytes: z
      .number()
      .int()
      .min(0)
      .default(10 * 1024 * 1024)
      .describe('Bytes of all scripts of one mailbox together (default 10 MiB; 0: no limit)'),
  })
  .strict();

/**
 * Where the state nodes must agree on lives (issue 16, src/state): the embedded SQLite files in dataDir (one node),
 * or a PostgreSQL 15+ every node of a cluster uses.
 */
export const stateSchema = z
  .discriminatedUnion('type', [
    z.object({ type: z.literal('sqlite').describe('The embedded SQLite files in dataDir: one node') }).strict(),
    z
      .object({
        type: z.literal('postgres').describe('A PostgreSQL 15+ shared by every node'),
        url: z
          .string()
          .regex(/^postgres(ql)?:\/\//, 'a postgres:// or postgresql:// URL')
          .describe('postgres://user:password@host:port/database (libpq URL; ?sslmode=require etc. as pg accepts them)'),
        poolSize: z.number().int().min(2).max(200).default(10).describe('Connections each node keeps to PostgreSQL (one more for LISTEN)'),
        connectTimeoutMs: z
          .number()
          .int()
          .min(100)
          .default(5000)
          .describe('Longest wait for a connection; past it the operation fails temporarily (SMTP 451 4.3.0, IMAP NO [UNAVAILABLE])'),
        statementTimeoutMs: z
          .number()
          .int()
          .min(100)
          .default(15000)
          .describe('Longest a query may run before it is cancelled and the operation fails temporarily'),
        cacheDir: z
          .string()
          .optional()
          .describe(
            "This node's copies of the folder index (SQLite, one per folder). Default dataDir/index-cache; put it on local disk when dataDir is a mount the nodes share. Relative to the config file",
          ),
      })
      .strict(),
  ])
  .describe('The state store (issue 16): sqlite by default; postgres to run more than one node');

export const configSchema = z
  .object({
    hostname: z.string().optional().describe('FQDN used in greetings and Received; default: the system host name'),
    dataDir: z.string().default('./var').describe('settings.db, trace.db, queue/ and mail/ live here'),
    state: stateSchema.default({ type: 'sqlite' }),
    directory: directorySchema.prefault({ type: 'ldif', file: 'fixtures/ad/corp.ldif' }),
    auth: authSchema.prefault({}),
    tls: z
      .object({
        cert: z.string().optional().describe('PEM certificate chain for SMTP/IMAP/POP3 TLS'),
        key: z.string().optional().describe('PEM private key; when cert/key are absent a self-signed pair is made in dataDir/tls'),
      })
      .strict()
      .prefault({}),
    listeners: listenersSchema.prefault({}),
    smtp: smtpLimitsSchema.prefault({}),
    imap: z
      .object({
        workers: z
          .number()
          .int()
          .min(0)
          .max(64)
          .default(0)
          .describe(
            'IMAP worker processes: the main process keeps the IMAP listeners and hands each connection to the worker with the fewest sessions, and a plain connection whose login succeeds moves on to the worker that serves its mailbox (TLS connections stay); 0 serves IMAP in the main process. Workers share the Maildir store and its index and tell each other of changes',
          ),
      })
      .strict()
      .prefault({})
      .describe('IMAP server processes (issue 11: use more than one core)'),
    queue: queueSchema.prefault({}),
    managesieve: managesieveSchema.prefault({}).describe("Sieve script quotas per mailbox, enforced by ManageSieve's PUTSCRIPT (issue 15)"),
    delivery: z
      .object({
        remotePort: z.number().int().min(1).max(65535).default(25).describe('Port of remote MX hosts (tests point it at a loopback server)'),
        connectTimeoutSeconds: z.number().min(0.1).default(30),
        hopLimit: z.number().int().min(5).default(50).describe('Received headers beyond which a message is looping (Postfix hopcount_limit)'),
      })
      .strict()
      .prefault({}),
    admin: adminSchema.prefault({}),
    sieve: sieveDeliverySchema.prefault({}).describe('Sieve at local delivery: the admin before script, limits, vacation windows (issue 15)'),
    srs: z
      .object({
        enabled: z
          .boolean()
          .default(true)
          .describe('Rewrite the envelope sender of mail forwarded to other domains with SRS (SRS0, like postsrsd) so SPF still passes, and deliver bounces to those addresses'),
        domain: z.string().optional().describe('Domain of rewritten senders; it must reach this server (MX or A record). Default: hostname'),
        secretFile: z
          .string()
          .optional()
          .describe('SRS secrets, one per line: the first signs, every one verifies. Default dataDir/srs.secret, made when absent. Relative to the config file'),
        maxAgeDays: z.number().int().min(1).max(1000).default(21).describe('Days a rewritten sender is honoured for bounces (libsrs2 maxage)'),
      })
      .strict()
      .prefault({})
      .describe('Sender Rewriting Scheme for forwards (issue 12)'),
    clamav: clamavSchema.prefault({}).describe('ClamAV daemon used by the antivirus filter (filter.antivirus)'),
    spamassassin: spamassassinSchema.prefault({}).describe('SpamAssassin daemon used by the spam filter (filter.spam)'),
    dns: z
      .object({
        servers: z.array(z.string()).optional().describe('Resolvers (ip or ip:port) for MX and DNSBL lookups; default the system ones'),
        timeoutMs: z.number().int().min(100).default(5000),
      })
      .strict()
      .prefault({}),
    log: z
      .object({
        level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
        format: z
          .enum(['json', 'text'])
          .default('json')
          .describe('json: one JSON object per line; text: the seed\'s maillog lines (time, host, postern/<component>[pid]:, queue id, message, key=value)'),
        file: z
          .string()
          .optional()
          .describe('Mail transactions, like the seed\'s /var/log/maillog; default stderr. Relative to the config file; reopened on SIGUSR1 (logrotate)'),
        imapFile: z
          .string()
          .optional()
          .describe('IMAP and POP3 logins and logouts, like the seed\'s /var/log/imap; default with the rest. Reopened on SIGUSR1'),
      })
      .strict()
      .prefault({}),
  })
  .strict();

export type Config = z.infer<typeof configSchema>;
export type DirectoryConfig = z.infer<typeof directorySchema>;
export type AuthConfig = z.infer<typeof authSchema>;
export type StateConfig = z.infer<typeof stateSchema>;
export type PostgresStateConfig = Extract<StateConfig, { type: 'postgres' }>;
export type AdminConfig = z.infer<typeof adminSchema>;
export type ClamavConfig = z.infer<typeof clamavSchema>;
export type SpamAssassinConfig = z.infer<typeof spamassassinSchema>;

export function configJsonSchema(): unknown {
  return z.toJSONSchema(configSchema, { io: 'input' });
}
