/**
 * Syntax checks and normalisation of what admins type into settings: domains, local parts, addresses, logins,
 * next hops, networks. Each function returns the stored form (lower-case where the comparison is case-insensitive)
 * or throws SettingsError('invalid') with a message naming what was expected.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { isAbsolute } from 'node:path';
import { domainToASCII } from 'node:url';
import { loginKey } from '../directory/types.js';
import { DETECTABLE_TYPES, PLAIN_TEXT_TYPES } from '../filters/content-types.js';
import { invalid } from './errors.js';

export { loginKey };

const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

/**
 * A host name: labels of letters, digits and hyphens; internationalised names are stored in their ASCII (punycode)
 * form since that is what DNS and SMTP carry. A single trailing dot is dropped.
 */
function hostName(input: string, what: string, opts: { fqdn: boolean }): string {
  const raw = input.trim().replace(/\.$/, '');
  const ascii = raw === '' ? '' : domainToASCII(raw.normalize('NFC').toLowerCase());
  const labels = ascii.split('.');
  const ok =
    ascii !== '' &&
    ascii.length <= 253 &&
    labels.every((l) => LABEL.test(l)) &&
    (!opts.fqdn || labels.length >= 2) &&
    // An all-numeric last label would make 10.0.0.1 a "domain".
    !/^[0-9]+$/.test(labels[labels.length - 1]);
  if (!ok) {
    throw invalid(
      `${JSON.stringify(input)} is not a valid ${what}: expected ${opts.fqdn ? 'a fully qualified domain name like corp.example' : 'a host name'}`,
    );
  }
  return ascii;
}

/** A mail domain: an FQDN (at least two labels), lower-case. */
export function normalizeDomain(input: string, what = 'domain'): string {
  return hostName(input, what, { fqdn: true });
}

/**
 * A PEM file of CA certificates (smarthost.caFile): an absolute path to a readable file holding at least one
 * certificate. Checked when set, so a typo is refused now rather than found as deferred mail later.
 */
export function normalizeCaFile(input: string, what = 'CA file'): string {
  const path = input.trim();
  if (!isAbsolute(path)) throw invalid(`${JSON.stringify(input)} is not a valid ${what}: expected an absolute path to a PEM file`);
  let pem: string;
  try {
    pem = readFileSync(path, 'utf8');
  } catch (err) {
    throw invalid(`${what} ${path} cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  try {
    if (!blocks.length) throw new Error('no "BEGIN CERTIFICATE" block');
    for (const b of blocks) new X509Certificate(b);
  } catch (err) {
    throw invalid(`${what} ${path} is not a PEM certificate file: ${(err as Error).message}`);
  }
  return path;
}

/** A host name (single label allowed, e.g. an internal server) or an IP address. */
export function normalizeHost(input: string, what = 'host'): string {
  const s = input.trim();
  const unbracketed = s.startsWith('[') && s.endsWith(']') ? s.slice(1, -1) : s;
  if (isIP(unbracketed)) return unbracketed.toLowerCase();
  return hostName(s, what, { fqdn: false });
}

// atext of RFC 5322 §3.2.3 without `%` and `!`: percent hacks and bang paths are source routing, never ours.
const ATOM = /^[a-z0-9#$&'*+/=?^_`{|}~-]+$/;

/**
 * A local part as a dot-atom (RFC 5322 §3.2.3), lower-case: no quoted strings, no `@`, `%` or `!`, no leading,
 * trailing or doubled dot, at most 64 octets (RFC 5321 §4.5.3.1.1).
 */
export function normalizeLocalPart(input: string, what = 'local part'): string {
  const s = input.trim().normalize('NFC').toLowerCase();
  const ok = s !== '' && Buffer.byteLength(s) <= 64 && s.split('.').every((atom) => ATOM.test(atom));
  if (!ok) {
    throw invalid(
      `${JSON.stringify(input)} is not a valid ${what}: expected letters, digits, dots (not first, last or doubled) and ` +
        "#$&'*+/=?^_`{|}~- only (no @, %, ! or quotes), at most 64 characters",
    );
  }
  return s;
}

/** A mail address `local@domain`, lower-case. */
export function normalizeAddress(input: string, what = 'address'): string {
  const s = input.trim();
  const at = s.lastIndexOf('@');
  if (at <= 0 || at === s.length - 1) {
    throw invalid(`${JSON.stringify(input)} is not a valid ${what}: expected local@domain`);
  }
  const local = normalizeLocalPart(s.slice(0, at), `local part of ${what} ${JSON.stringify(input)}`);
  const domain = normalizeDomain(s.slice(at + 1), `domain of ${what} ${JSON.stringify(input)}`);
  return `${local}@${domain}`;
}

/** An entry of an allow/block list: a whole address, or a domain (also written `@domain`). */
export function normalizeAddressOrDomain(input: string): string {
  const s = input.trim();
  if (s.startsWith('@')) return normalizeDomain(s.slice(1));
  if (s.includes('@')) return normalizeAddress(s);
  return normalizeDomain(s, 'address or domain');
}

export interface Nexthop {
  host: string;
  port?: number;
}

/** `host`, `host:port`, `[host]:port`, an IPv4 address or a bracketed IPv6 address with an optional port. */
export function parseNexthop(input: string): Nexthop {
  const s = input.trim();
  let host: string;
  let port: string | undefined;
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(s);
  if (bracketed) {
    [, host, port] = bracketed;
  } else if (isIP(s) === 6) {
    host = s;
  } else {
    const m = /^([^:]+)(?::(\d+))?$/.exec(s);
    if (!m) throw invalid(`${JSON.stringify(input)} is not a valid next hop: expected HOST or HOST:PORT`);
    [, host, port] = m;
  }
  const normalizedHost = normalizeHost(host, 'next hop host');
  if (port === undefined) return { host: normalizedHost };
  const n = Number(port);
  if (!Number.isInteger(n) || n < 1 || n > 65535) {
    throw invalid(`${JSON.stringify(input)}: port must be between 1 and 65535`);
  }
  return { host: normalizedHost, port: n };
}

export function formatNexthop(n: Nexthop): string {
  const host = isIP(n.host) === 6 ? `[${n.host}]` : n.host;
  return n.port === undefined ? host : `${host}:${n.port}`;
}

export function normalizeNexthop(input: string): string {
  return formatNexthop(parseNexthop(input));
}

/**
 * The IMAP server holding a domain's mailboxes, for RFC 2221 login referrals: `imap://host[:port]/` (RFC 5092),
 * normalised to a lower-case host and a trailing slash. The user part is filled in per login, so the URL names a
 * server only: no user, no `;AUTH=`, no mailbox path, no query.
 */
export function normalizeImapReferral(input: string): string {
  const s = input.trim();
  const m = /^imap:\/\/([^/?#]+)\/?$/i.exec(s);
  if (!m) throw invalid(`${JSON.stringify(input)} is not a valid IMAP referral: expected imap://HOST[:PORT]/`);
  if (/[@;]/.test(m[1])) {
    throw invalid(`${JSON.stringify(input)}: give the server only (imap://HOST[:PORT]/); the user name is added per login`);
  }
  return `imap://${formatNexthop(parseNexthop(m[1]))}/`;
}

// Characters AD refuses in sAMAccountName, plus `@`; `*` matters most: it is the master-user separator.
const LOGIN_FORBIDDEN = /["/\\[\]:;|=,+*?<>@\p{Cc}]/u;

/** A user login or group name (sAMAccountName): kept as typed for display; compare with loginKey(). */
export function normalizeLogin(input: string, what = 'login'): string {
  const s = input.trim().normalize('NFC');
  if (s === '' || s.length > 256 || LOGIN_FORBIDDEN.test(s) || /^\.+$/.test(s)) {
    throw invalid(`${JSON.stringify(input)} is not a valid ${what}: expected an account name (sAMAccountName) without "/\\[]:;|=,+*?<>@`);
  }
  return s;
}

/** An IP address or a CIDR network; IPv6 lower-case. */
export function normalizeNetwork(input: string): string {
  const s = input.trim();
  const slash = s.indexOf('/');
  const addr = (slash < 0 ? s : s.slice(0, slash)).toLowerCase();
  const family = isIP(addr);
  if (!family) throw invalid(`${JSON.stringify(input)} is not an IP address or network: expected e.g. 192.168.1.10 or 192.168.1.0/24`);
  if (slash < 0) return addr;
  const prefix = s.slice(slash + 1);
  const max = family === 4 ? 32 : 128;
  if (!/^\d{1,3}$/.test(prefix) || Number(prefix) > max) {
    throw invalid(`${JSON.stringify(input)}: the prefix length must be 0 to ${max}`);
  }
  return `${addr}/${Number(prefix)}`;
}

/** A file extension for the custom attachment block list: `iso`, `.iso` or `*.iso`, stored as `iso`. */
export function normalizeExtension(input: string): string {
  const s = input.trim().toLowerCase().replace(/^\*?\./, '');
  if (!/^[a-z0-9_-]{1,16}(\.[a-z0-9_-]{1,16})?$/.test(s)) throw invalid(`${JSON.stringify(input)} is not a file extension: expected e.g. rtf or .rtf`);
  return s;
}

/**
 * An entry of `filter.attachments.custom`: a type the attachment filter can recognise by its content (the seed:
 * "file types by looking at their contents, regardless of the file attachment name"). A type it can never find —
 * a script, plain text without a magic number — would be a setting that silently does nothing, so it is refused
 * with the list of what can be recognised.
 */
export function normalizeAttachmentType(input: string): string {
  const s = normalizeExtension(input);
  if (DETECTABLE_TYPES.has(s)) return s;
  const why = PLAIN_TEXT_TYPES.has(s)
    ? `${s} files are plain text with no magic number, so they can never be recognised by content (scripts are the antivirus' job)`
    : `${s} is not a type that detection by content recognises`;
  throw invalid(`${JSON.stringify(input)}: ${why}; the types recognised by content are: ${[...DETECTABLE_TYPES].sort().join(', ')}`);
}
