/**
 * The registry of key/value runtime settings (DESIGN.md §7): one entry per seed setting, named after the seed's
 * page, with its type (a zod schema), its default and a description. The seed's default is used where the seed
 * states one; where it is silent the choice is said in the description.
 *
 * Adding a key is adding an entry here: no migration is needed, values are stored as JSON in the `settings` table.
 */
import { z } from 'zod';
import { SettingsError } from './errors.js';
import {
  normalizeAddress,
  normalizeAddressOrDomain,
  normalizeCaFile,
  normalizeDomain,
  normalizeAttachmentType,
  normalizeHost,
  normalizeNetwork,
} from './validate.js';

/** How a value is typed on the command line (see parseSettingText). */
export type SettingKind = 'boolean' | 'integer' | 'number' | 'string' | 'enum' | 'list';

/** The seed's pages, for grouping in the CLI, the API and the web page. */
export type SettingPage = 'Mailboxes' | 'Messages' | 'Filter' | 'SMTP access';

export interface SettingDef<S extends z.ZodType = z.ZodType> {
  kind: SettingKind;
  page: SettingPage;
  schema: S;
  default: z.output<S>;
  description: string;
  /** What a valid value looks like, for error messages ("expected …"). */
  expect: string;
  /** Never printed by get/list (the smarthost password). */
  secret?: boolean;
  /** `null` is a valid value ("not set"); an empty string on the command line means null. */
  nullable?: boolean;
}

/** Wraps a normaliser that throws SettingsError into a zod transform, so its message becomes the issue. */
function normalized(fn: (s: string) => string) {
  return z.string().transform((s, ctx) => {
    try {
      return fn(s);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: err instanceof SettingsError ? err.message : String(err) });
      return z.NEVER;
    }
  });
}

/** A list whose entries are normalised and de-duplicated, order kept. */
function list(fn: (s: string) => string) {
  return z.array(normalized(fn)).transform((items) => [...new Set(items)]);
}

/** A value or null; '' also means null, so `postern settings set smtp.heloHost ''` clears it. */
function orNull<S extends z.ZodType>(schema: S) {
  return z.preprocess((v) => (v === '' ? null : v), schema.nullable());
}

const bool = z.boolean();
const count = (max = Number.MAX_SAFE_INTEGER) => z.number().int().min(0).max(max);

function def<S extends z.ZodType>(
  page: SettingPage,
  kind: SettingKind,
  schema: S,
  dflt: z.output<S>,
  expect: string,
  description: string,
  extra: Pick<SettingDef, 'secret' | 'nullable'> = {},
): SettingDef<S> {
  return { page, kind, schema, default: dflt, expect, description, ...extra };
}

const YES_NO = 'yes or no';

export const SETTING_DEFS = {
  // --- Email > Mailboxes -------------------------------------------------------------------------------------
  'mailbox.imap': def('Mailboxes', 'boolean', bool, true, YES_NO, 'Users can read their mailbox over IMAP (143, 993).'),
  'mailbox.pop3': def('Mailboxes', 'boolean', bool, true, YES_NO, 'Users can read their mailbox over POP3 (110, 995).'),
  'mailbox.allowUnencrypted': def(
    'Mailboxes',
    'boolean',
    bool,
    false,
    YES_NO,
    'Allow logins and mail on unencrypted connections (no STARTTLS). The seed requires STARTTLS by default; do not enable in production.',
  ),
  'mailbox.quotaMB': def(
    'Mailboxes',
    'integer',
    count(),
    0,
    'a whole number of megabytes, 0 for no quota',
    'Mailbox quota in MB for every user; 0 = no quota. A user can have a custom quota (postern user set LOGIN --quota MB).',
  ),
  'mailbox.moveSpamToJunk': def(
    'Mailboxes',
    'boolean',
    bool,
    true,
    YES_NO,
    'Deliver messages marked as spam into the Junk folder (also what lets users train the spam filter by moving mail in and out of Junk). Default yes (seed silent).',
  ),
  'mailbox.spamRetentionDays': def(
    'Mailboxes',
    'integer',
    count(),
    15,
    'a whole number of days, 0 to keep spam forever',
    'Spam in the Junk folder is expunged after this many days ("Hold for"); 0 = never. Default 15 days. A user can have a custom retention (postern user set LOGIN --spam-retention DAYS).',
  ),
  'mailbox.deletedAccountRetentionDays': def(
    'Mailboxes',
    'integer',
    count(),
    30,
    'a whole number of days, 0 to erase at once',
    'When an account leaves AD (deleted, or moved out of the base DN) its mailbox is orphaned: refused for mail and logins, listed by `postern mailbox orphans`, and erased after this many days (default 30, as Exchange keeps a disconnected mailbox); 0 = erased at once, the seed\'s behaviour. An account restored with the same objectGUID gets its mailbox back until then.',
  ),
  'mailbox.enabledGroup': def(
    'Mailboxes',
    'string',
    z.string().trim().max(256),
    '',
    'an AD group name, or empty for every account',
    'Only members of this AD group (nested membership counts) have a mailbox: others get no mail (550 5.1.1) and cannot log in to IMAP or POP3. Empty (default) = every enabled account with an address.',
  ),
  'mailbox.masterUser': def(
    'Mailboxes',
    'boolean',
    bool,
    false,
    YES_NO,
    'Admin can log in as another user ("john*admin" with the admin password; see auth.masterLogin and auth.masterSeparator in the config file).',
  ),
  'mailbox.deletedToTrash': def(
    'Mailboxes',
    'boolean',
    bool,
    false,
    YES_NO,
    'Move messages flagged \\Deleted into Trash instead of leaving them in place (for Outlook, which only marks them).',
  ),

  // --- Email > Messages --------------------------------------------------------------------------------------
  'queue.maxMessageSizeMB': def(
    'Messages',
    'integer',
    count(10240).min(1),
    20,
    'a whole number of megabytes from 1 to 10240',
    'Queue message max size: larger messages are refused at SMTP time (SIZE, RFC 1870). Default 20 MB (seed silent).',
  ),
  'queue.lifetimeHours': def(
    'Messages',
    'integer',
    count(24 * 90).min(1),
    96,
    'a whole number of hours from 1 to 2160',
    'Queue message lifetime: how long a message that cannot be delivered is retried before it bounces. Default 96 hours (the seed: 4 days).',
  ),
  'trace.retentionDays': def(
    'Messages',
    'integer',
    count(3650),
    30,
    'a whole number of days from 0 to 3650, 0 to keep the trace forever',
    'Message trace (postern trace, GET /api/trace): how long the path of a message is kept after its last event. Default 30 days (Exchange keeps message tracking logs 30 days); 0 = forever.',
  ),
  'queue.alwaysBcc': def(
    'Messages',
    'string',
    orNull(normalized(normalizeAddress)),
    null,
    'an address, or empty for none',
    'Always send a hidden copy (Bcc) of every message, incoming and outgoing, to this address. Empty = off. May be against privacy laws in some countries.',
    { nullable: true },
  ),
  'smarthost.enabled': def(
    'Messages',
    'boolean',
    bool,
    false,
    YES_NO,
    'Send all outgoing mail through the smarthost (smarthost.host) instead of to the recipients\' MX. Not recommended unless blacklisted or port 25 is blocked.',
  ),
  'smarthost.host': def(
    'Messages',
    'string',
    orNull(normalized((s) => normalizeHost(s, 'smarthost host'))),
    null,
    'a host name or IP address',
    'Smarthost name or address (required when smarthost.enabled).',
    { nullable: true },
  ),
  'smarthost.port': def('Messages', 'integer', count(65535).min(1), 587, 'a port from 1 to 65535', 'Smarthost port. Default 587 (submission).'),
  'smarthost.username': def(
    'Messages',
    'string',
    orNull(z.string().max(256)),
    null,
    'a user name, or empty for none',
    'User name for SMTP AUTH at the smarthost; empty = no authentication.',
    { nullable: true },
  ),
  'smarthost.password': def(
    'Messages',
    'string',
    orNull(z.string().max(1024)),
    null,
    'a password, or empty for none',
    'Password for SMTP AUTH at the smarthost. Stored in settings.db (mode 0600); never printed.',
    { nullable: true, secret: true },
  ),
  'smarthost.tls': def(
    'Messages',
    'enum',
    z.enum(['starttls', 'tls', 'none']),
    'starttls',
    'one of starttls, tls, none',
    'Encryption to the smarthost: starttls (required STARTTLS, usually port 587), tls (implicit TLS, usually port 465) or none. Default starttls.',
  ),
  'smarthost.caFile': def(
    'Messages',
    'string',
    orNull(normalized((s) => normalizeCaFile(s, 'smarthost CA file'))),
    null,
    'an absolute path to a PEM file of CA certificates, or empty for the system CAs only',
    'CA certificates (PEM) trusted for the smarthost\'s certificate besides the system ones, e.g. a company CA. Checked when set; re-read at each delivery. Empty = the system CAs only.',
    { nullable: true },
  ),
  'smarthost.verify': def(
    'Messages',
    'boolean',
    bool,
    true,
    YES_NO,
    'Verify the smarthost\'s certificate (name and CA). The smarthost gets our credentials: turn off only for a smarthost on a trusted network with a certificate that cannot be verified. Default yes.',
  ),

  // --- Email > Filter ----------------------------------------------------------------------------------------
  'filter.attachments.executables': def(
    'Filter',
    'boolean',
    bool,
    false,
    YES_NO,
    'Refuse messages with executable attachments, recognised by content not name. Default no (seed silent).',
  ),
  'filter.attachments.archives': def(
    'Filter',
    'boolean',
    bool,
    false,
    YES_NO,
    'Refuse messages with archive attachments (zip, rar, 7z, …), recognised by content. Default no (seed silent).',
  ),
  'filter.attachments.custom': def(
    'Filter',
    'list',
    list(normalizeAttachmentType),
    [],
    'a comma-separated list of types recognised by content (file-type names such as rtf, swf, dmg, sqlite; see the error for the full list)',
    'Refuse messages with attachments of these types, recognised by content, never by name (e.g. rtf,swf). Only types that detection by content can recognise are accepted: scripts such as bat, js, vbs are plain text and can never be found. Default none.',
  ),
  'filter.attachments.officeAsArchive': def(
    'Filter',
    'boolean',
    bool,
    false,
    YES_NO,
    'Treat Office documents (docx, xlsx, odt, …), which are zip files inside, as archives. Default no, so blocking archives does not block documents (the seed warns they may be).',
  ),
  'filter.antivirus': def('Filter', 'boolean', bool, true, YES_NO, 'Scan messages with ClamAV. Default yes.'),
  'filter.antivirus.action': def(
    'Filter',
    'enum',
    z.enum(['reject', 'discard']),
    'reject',
    'one of reject, discard',
    'What happens to an infected message: reject (refused during the SMTP session, so the sender learns it without a bounce) or discard (accepted and dropped, as the seed describes). Default reject. Antivirus applies even to allow-listed senders.',
  ),
  'filter.spam': def('Filter', 'boolean', bool, true, YES_NO, 'Score messages with SpamAssassin. Default yes.'),
  'filter.spam.threshold': def(
    'Filter',
    'number',
    z.number().min(-100).max(1000),
    5,
    'a number',
    'Spam threshold: at this score a message is marked as spam (X-Spam-Flag: YES). Default 5 (SpamAssassin\'s).',
  ),
  'filter.spam.denyThreshold': def(
    'Filter',
    'number',
    z.number().min(-100).max(1000),
    15,
    'a number',
    'Deny message spam threshold: at this score a message is refused. Must not be below filter.spam.threshold. Default 15.',
  ),
  'filter.spam.subjectPrefix': def(
    'Filter',
    'string',
    z.string().max(64).regex(/^[^\r\n]*$/, 'no line breaks'),
    '',
    'text without line breaks, or empty for none',
    'Prefix added to the Subject of spam messages, e.g. "***SPAM*** ". Empty = the subject is left alone (default).',
  ),
  'filter.spam.maxScanSizeKB': def(
    'Filter',
    'integer',
    count(100 * 1024).min(1),
    500,
    'a whole number of kilobytes',
    'Messages larger than this are not sent to SpamAssassin (spammers rarely send large mail, and scanning it is slow). Default 500 KB (spamc\'s default; seed silent).',
  ),
  'filter.lists.allowFrom': def(
    'Filter',
    'list',
    list(normalizeAddressOrDomain),
    [],
    'a comma-separated list of addresses or domains',
    'Allow from: mail from these senders (addresses or whole domains) skips the spam checks. Antivirus still applies.',
  ),
  'filter.lists.allowTo': def(
    'Filter',
    'list',
    list(normalizeAddressOrDomain),
    [],
    'a comma-separated list of addresses or domains',
    'Allow to: mail to these recipients (addresses or whole domains) skips the spam checks. Antivirus still applies.',
  ),
  'filter.lists.blockFrom': def(
    'Filter',
    'list',
    list(normalizeAddressOrDomain),
    [],
    'a comma-separated list of addresses or domains',
    'Block from: mail from these senders (addresses or whole domains) is refused.',
  ),
  'filter.dnsbl.zones': def(
    'Filter',
    'list',
    list((s) => normalizeDomain(s, 'DNSBL zone')),
    [],
    'a comma-separated list of DNS zones',
    'DNS blocklists the connecting server is checked against (e.g. zen.spamhaus.org). Default none (seed silent: a public list needs its own agreement).',
  ),
  'filter.dmarc.rejectOnPolicy': def(
    'Filter',
    'boolean',
    bool,
    false,
    YES_NO,
    'Refuse mail failing DMARC when the sender domain publishes p=reject. Default no (seed silent).',
  ),

  'filter.antivirus.onFailure': def(
    'Filter',
    'enum',
    z.enum(['tempfail', 'accept']),
    'tempfail',
    'one of tempfail, accept',
    'When clamd is down or too slow: tempfail (451 4.7.1, the sender retries later; default) or accept the message unscanned (logged).',
  ),
  'filter.spam.onFailure': def(
    'Filter',
    'enum',
    z.enum(['tempfail', 'accept']),
    'tempfail',
    'one of tempfail, accept',
    'When spamd is down or too slow: tempfail (451 4.7.1; default) or accept the message unscored (logged).',
  ),
  'filter.dnsbl.onFailure': def(
    'Filter',
    'enum',
    z.enum(['tempfail', 'accept']),
    'tempfail',
    'one of tempfail, accept',
    'When no DNSBL zone answers: tempfail (451 4.7.1; default) or accept the connection unchecked (logged).',
  ),

  // --- Email > SMTP access -----------------------------------------------------------------------------------
  'smtp.relayFrom': def(
    'SMTP access',
    'list',
    list(normalizeNetwork),
    [],
    'a comma-separated list of IP addresses or CIDR networks',
    'Allow relay from IP addresses: these clients (printers, scanners) may send to any address on port 25 without authentication. Default none.',
  ),
  'smtp.trustedNetworks': def(
    'SMTP access',
    'list',
    list(normalizeNetwork),
    [],
    'a comma-separated list of IP addresses or CIDR networks',
    'The local network: clients here may write to "local network only" addresses (they do not get relay rights: that is smtp.relayFrom). Authenticated users and smtp.relayFrom clients always count as local; loopback is not special (add 127.0.0.1 here for local scripts). Default none (seed silent).',
  ),
  'smtp.authOnPort25': def(
    'SMTP access',
    'boolean',
    bool,
    false,
    YES_NO,
    'Offer SMTP AUTH on port 25 too (clients should use 587/465). Default no.',
  ),
  'smtp.masterUserAuth': def(
    'SMTP access',
    'boolean',
    bool,
    false,
    YES_NO,
    'Accept the master-user login ("john*admin", see mailbox.masterUser) on SMTP AUTH too. The seed\'s master user is an IMAP/POP3 feature: by default SMTP AUTH refuses it, so the admin password cannot send mail as every user. Default no.',
  ),
  'smtp.heloHost': def(
    'SMTP access',
    'string',
    orNull(normalized((s) => normalizeDomain(s, 'HELO host'))),
    null,
    'a fully qualified host name, or empty for the configured hostname',
    'Name sent in HELO/EHLO when relaying to other servers, when the host name is not registered in public DNS. Empty = the config file\'s hostname.',
    { nullable: true },
  ),
  'smtp.rejectInvalidHelo': def(
    'SMTP access',
    'boolean',
    bool,
    false,
    YES_NO,
    'On port 25, refuse clients whose HELO is not a fully qualified domain name or address literal (RFC 1123 §5.2.5; syntax only, no DNS lookup). Clients in smtp.relayFrom / smtp.trustedNetworks and authenticated users are exempt. Default no (seed silent).',
  ),
  'smtp.senderMustMatchLogin': def(
    'SMTP access',
    'boolean',
    bool,
    true,
    YES_NO,
    'An authenticated user may only use their own addresses (and those of their groups and pseudonyms) as MAIL FROM. Default yes.',
  ),
  // Send limits (src/limits): what a stolen password can send before it is stopped with 451 4.7.1.
  'smtp.sendLimit.messagesPerHour': def(
    'SMTP access',
    'integer',
    count(),
    500,
    'a whole number of messages, 0 for no limit',
    'Messages an authenticated user may send in any 60 minutes (submission 587/465, and port 25 with AUTH); past it MAIL FROM is answered 451 4.7.1. 0 = no limit. A user can have a custom limit (postern user set LOGIN --send-limit-messages N). Default 500, enough for a busy office.',
  ),
  'smtp.sendLimit.recipientsPerHour': def(
    'SMTP access',
    'integer',
    count(),
    2000,
    'a whole number of recipients, 0 for no limit',
    'Recipients an authenticated user may send to in any 60 minutes, summed over their messages; past it RCPT TO is answered 451 4.7.1. 0 = no limit. A user can have a custom limit (postern user set LOGIN --send-limit-recipients N). Default 2000.',
  ),
  'smtp.sendLimit.ipMessagesPerHour': def(
    'SMTP access',
    'integer',
    count(),
    1000,
    'a whole number of messages, 0 for no limit',
    'Messages authenticated clients from one IP address (one /64 for IPv6) may send in any 60 minutes, whatever accounts they use: many stolen passwords used from one place. smtp.trustedNetworks and smtp.relayFrom are exempt (an office behind one NAT address). 0 = no limit. Default 1000.',
  ),
  'smtp.sendLimit.ipRecipientsPerHour': def(
    'SMTP access',
    'integer',
    count(),
    4000,
    'a whole number of recipients, 0 for no limit',
    'Recipients authenticated clients from one IP address (one /64 for IPv6) may send to in any 60 minutes; smtp.trustedNetworks and smtp.relayFrom are exempt. 0 = no limit. Default 4000.',
  ),
};

export type SettingKey = keyof typeof SETTING_DEFS;
export type SettingValue<K extends SettingKey> = z.output<(typeof SETTING_DEFS)[K]['schema']>;
export type SettingValues = { [K in SettingKey]: SettingValue<K> };

export const SETTING_KEYS = Object.keys(SETTING_DEFS) as SettingKey[];

export function isSettingKey(key: string): key is SettingKey {
  return Object.prototype.hasOwnProperty.call(SETTING_DEFS, key);
}

export function settingDef<K extends SettingKey>(key: K): SettingDef<(typeof SETTING_DEFS)[K]['schema']> {
  return SETTING_DEFS[key] as SettingDef<(typeof SETTING_DEFS)[K]['schema']>;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length];
}

/** Throws SettingsError('unknown-key'), suggesting near spellings, else the keys of the same group. */
export function assertSettingKey(key: string): asserts key is SettingKey {
  if (isSettingKey(key)) return;
  const needle = key.toLowerCase();
  let near = SETTING_KEYS.filter((k) => editDistance(k.toLowerCase(), needle) <= 2);
  if (!near.length) near = SETTING_KEYS.filter((k) => needle.length >= 3 && k.toLowerCase().includes(needle));
  if (!near.length) near = SETTING_KEYS.filter((k) => k.startsWith(needle.split('.')[0] + '.'));
  const hint = near.length ? `; did you mean ${near.slice(0, 8).join(', ')}?` : '; see postern settings list';
  throw new SettingsError('unknown-key', `unknown setting ${JSON.stringify(key)}${hint}`, key);
}

/**
 * Rules between keys, checked when one of `keys` changes. Checking only on change means a database edited into an
 * inconsistent state does not block unrelated changes.
 */
export interface CrossCheck {
  keys: SettingKey[];
  check(v: SettingValues): string | null;
}

export const CROSS_CHECKS: CrossCheck[] = [
  {
    keys: ['smarthost.enabled', 'smarthost.host'],
    check: (v) => (v['smarthost.enabled'] && !v['smarthost.host'] ? 'smarthost.enabled needs smarthost.host: set the host first' : null),
  },
  {
    keys: ['filter.spam.threshold', 'filter.spam.denyThreshold'],
    check: (v) =>
      v['filter.spam.threshold'] > v['filter.spam.denyThreshold']
        ? `filter.spam.threshold (${v['filter.spam.threshold']}) must not be above filter.spam.denyThreshold (${v['filter.spam.denyThreshold']}); set both at once with: postern settings set filter.spam.threshold X filter.spam.denyThreshold Y`
        : null,
  },
];

const TRUE_WORDS = new Set(['yes', 'y', 'true', 'on', 'enabled', 'enable', '1']);
const FALSE_WORDS = new Set(['no', 'n', 'false', 'off', 'disabled', 'disable', '0']);

/**
 * Turns command-line text into a value for `key` (validation is the schema's job, afterwards):
 * booleans yes/no/true/false/on/off/enabled/disabled/1/0; numbers; lists comma- or newline-separated or a JSON
 * array; strings as typed (a JSON-quoted string is unquoted, so leading/trailing spaces can be given).
 */
export function parseSettingText(key: SettingKey, text: string): unknown {
  const d = SETTING_DEFS[key] as SettingDef;
  const t = text.trim();
  switch (d.kind) {
    case 'boolean': {
      const w = t.toLowerCase();
      if (TRUE_WORDS.has(w)) return true;
      if (FALSE_WORDS.has(w)) return false;
      throw new SettingsError('invalid', `${key}: ${JSON.stringify(text)} is not ${d.expect} (also true/false, on/off, enabled/disabled)`, key);
    }
    case 'integer':
    case 'number': {
      const n = t === '' ? NaN : Number(t);
      if (!Number.isFinite(n)) throw new SettingsError('invalid', `${key}: ${JSON.stringify(text)} is not a number; expected ${d.expect}`, key);
      return n;
    }
    case 'list': {
      if (t.startsWith('[')) {
        try {
          return JSON.parse(t) as unknown;
        } catch {
          throw new SettingsError('invalid', `${key}: ${JSON.stringify(text)} is not a valid JSON array; expected ${d.expect}`, key);
        }
      }
      return t
        .split(/[,\n]/)
        .map((s) => s.trim())
        .filter((s) => s !== '');
    }
    case 'enum':
      return t.toLowerCase();
    case 'string': {
      if (t.length >= 2 && t.startsWith('"') && t.endsWith('"')) {
        try {
          return JSON.parse(t) as unknown;
        } catch {
          /* not JSON: taken as typed */
        }
      }
      if (d.nullable && t === '') return null;
      return text;
    }
  }
}
