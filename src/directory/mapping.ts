/**
 * The AD mapping rules (DESIGN.md §3, the seed's "Active Directory" section), shared by every backend so that the
 * embedded LDIF directory and a real DC give the same answers for the same entries.
 */
import type { DirectoryEntry, GroupEntry, UserEntry } from './types.js';
import { guidFromValue } from './guid.js';

/** One LDAP entry as read from AD or LDIF: attribute names lower-cased, values as strings (and raw bytes). */
export interface RawEntry {
  dn: string;
  attrs: Record<string, string[]>;
  binary: Record<string, Buffer[]>;
}

export interface MappingOptions {
  /** `directory.userPrincipalNameIsAddress` (the seed's AdsMapUserPrincipalStatus), default true. */
  userPrincipalNameIsAddress: boolean;
  /** For accountExpires; injectable for tests. */
  now?: () => Date;
}

/** Attributes every backend asks AD for. */
export const ENTRY_ATTRIBUTES = [
  'objectClass',
  'sAMAccountName',
  'userPrincipalName',
  'displayName',
  'cn',
  'mail',
  'otherMailbox',
  'proxyAddresses',
  'userAccountControl',
  'msDS-User-Account-Control-Computed',
  'accountExpires',
  'pwdLastSet',
  'memberOf',
  'objectGUID',
] as const;

/** Attributes that are binary in AD and must be read as bytes (ldapts explicitBufferAttributes). */
export const BINARY_ATTRIBUTES = ['objectGUID'] as const;

function guidOf(entry: RawEntry): string | undefined {
  return guidFromValue(entry.binary['objectguid']?.[0], entry.attrs['objectguid']?.[0]);
}

const UF_ACCOUNTDISABLE = 0x2;
const UF_LOCKOUT = 0x10;
/** accountExpires values meaning "never" (MS-ADA1 §2.13). */
const NEVER_EXPIRES = new Set(['0', '9223372036854775807']);
/** Seconds between 1601-01-01 (FILETIME epoch) and 1970-01-01. */
const FILETIME_EPOCH_OFFSET_S = 11644473600n;

export function first(entry: RawEntry, name: string): string | undefined {
  return entry.attrs[name.toLowerCase()]?.[0];
}

export function all(entry: RawEntry, name: string): string[] {
  return entry.attrs[name.toLowerCase()] ?? [];
}

const ADDRESS_RE = /^[^\s@"<>()[\]\\,;:]+@[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*$/;

/**
 * Lower-cases an address (AD matches addresses case-insensitively) and checks it is a plain dot-atom address.
 * Returns null for anything else: quoted local parts, source routes, bang paths and percent hacks are never
 * addresses of ours.
 */
export function normalizeAddress(address: string): string | null {
  const a = address.trim().normalize('NFC').toLowerCase();
  if (!ADDRESS_RE.test(a)) return null;
  const local = a.slice(0, a.lastIndexOf('@'));
  if (local.includes('%') || local.includes('!') || local.startsWith('.') || local.endsWith('.') || local.includes('..')) {
    return null;
  }
  return a;
}

export function domainOf(address: string): string {
  return address.slice(address.lastIndexOf('@') + 1);
}

export function localPartOf(address: string): string {
  return address.slice(0, address.lastIndexOf('@'));
}

/**
 * proxyAddresses / otherMailbox values carry a type prefix; only `smtp:` (any case) is an e-mail address and
 * upper-case `SMTP:` marks the primary one. `X500:`, `sip:`, `x400:` … are ignored.
 */
export function parseProxyAddress(value: string): { address: string; primary: boolean } | null {
  const m = /^smtp:(.+)$/i.exec(value.trim());
  if (!m) return null;
  const address = normalizeAddress(m[1]);
  if (!address) return null;
  return { address, primary: value.startsWith('SMTP:') };
}

function isType(entry: RawEntry, cls: string): boolean {
  return all(entry, 'objectClass').some((c) => c.toLowerCase() === cls);
}

export function isUserEntry(entry: RawEntry): boolean {
  return isType(entry, 'user') && !isType(entry, 'computer');
}

export function isGroupEntry(entry: RawEntry): boolean {
  return isType(entry, 'group');
}

/** accountExpires is a FILETIME (100 ns since 1601); 0 and 2^63-1 mean never. */
export function accountExpired(value: string | undefined, now: Date): boolean {
  if (value === undefined || NEVER_EXPIRES.has(value.trim())) return false;
  let ticks: bigint;
  try {
    ticks = BigInt(value.trim());
  } catch {
    return false;
  }
  const ms = (ticks / 10_000n) - FILETIME_EPOCH_OFFSET_S * 1000n;
  return ms <= BigInt(now.getTime());
}

/** Converts a JS date to an AD FILETIME string (for fixtures and tests). */
export function toFiletime(date: Date): string {
  return ((BigInt(date.getTime()) + FILETIME_EPOCH_OFFSET_S * 1000n) * 10_000n).toString();
}

function collectAddresses(entry: RawEntry, opts: MappingOptions, withUpn: boolean): { addresses: string[]; primary?: string } {
  const seen = new Set<string>();
  let primary: string | undefined;
  const add = (a: string | null) => {
    if (a) seen.add(a);
  };
  for (const v of all(entry, 'proxyAddresses')) {
    const p = parseProxyAddress(v);
    if (!p) continue;
    if (p.primary && !primary) primary = p.address;
    add(p.address);
  }
  const mail = first(entry, 'mail');
  const mailAddress = mail ? normalizeAddress(mail) : null;
  add(mailAddress);
  for (const v of all(entry, 'otherMailbox')) add(parseProxyAddress(v)?.address ?? null);
  if (withUpn && opts.userPrincipalNameIsAddress) {
    const upn = first(entry, 'userPrincipalName');
    add(upn ? normalizeAddress(upn) : null);
  }
  primary ??= mailAddress ?? [...seen][0];
  const addresses = primary ? [primary, ...[...seen].filter((a) => a !== primary)] : [...seen];
  return { addresses, primary };
}

export function mapUser(entry: RawEntry, opts: MappingOptions): UserEntry {
  const now = (opts.now ?? (() => new Date()))();
  const uac = Number.parseInt(first(entry, 'userAccountControl') ?? '0', 10) || 0;
  const computed = Number.parseInt(first(entry, 'msDS-User-Account-Control-Computed') ?? '0', 10) || 0;
  const disabled = (uac & UF_ACCOUNTDISABLE) !== 0;
  const expired = accountExpired(first(entry, 'accountExpires'), now);
  const locked = ((computed | uac) & UF_LOCKOUT) !== 0;
  const mustChangePassword = first(entry, 'pwdLastSet')?.trim() === '0';
  const { addresses, primary } = collectAddresses(entry, opts, true);
  const enabled = !disabled && !expired;
  return {
    kind: 'user',
    dn: entry.dn,
    ...(guidOf(entry) ? { guid: guidOf(entry) } : {}),
    login: first(entry, 'sAMAccountName') ?? first(entry, 'cn') ?? entry.dn,
    userPrincipalName: first(entry, 'userPrincipalName'),
    displayName: first(entry, 'displayName') ?? first(entry, 'cn'),
    primaryAddress: primary,
    addresses,
    disabled,
    expired,
    locked,
    mustChangePassword,
    enabled,
    canLogin: enabled && !locked && !mustChangePassword,
    memberOf: all(entry, 'memberOf'),
  };
}

export function mapGroup(entry: RawEntry, opts: MappingOptions): GroupEntry {
  const { addresses, primary } = collectAddresses(entry, opts, false);
  return {
    kind: 'group',
    dn: entry.dn,
    ...(guidOf(entry) ? { guid: guidOf(entry) } : {}),
    name: first(entry, 'sAMAccountName') ?? first(entry, 'cn') ?? entry.dn,
    primaryAddress: primary,
    addresses,
    // The seed: "groups with a mail attribute" are the mail-enabled ones.
    mailEnabled: first(entry, 'mail') !== undefined,
  };
}

export function mapEntry(entry: RawEntry, opts: MappingOptions): DirectoryEntry | null {
  if (isUserEntry(entry)) return mapUser(entry, opts);
  if (isGroupEntry(entry)) return mapGroup(entry, opts);
  return null;
}

/** DNs compare case-insensitively in AD; normalise spacing after commas too. */
export function dnKey(dn: string): string {
  return dn.replace(/,\s+/g, ',').toLowerCase();
}
