/**
 * The Directory contract (DESIGN.md §3): one interface, backends behind it (ldap/, ldif/), a cache in front.
 * Entries are already mapped by the AD rules in ./mapping.ts, so no caller ever looks at raw LDAP attributes.
 */

export interface UserEntry {
  kind: 'user';
  dn: string;
  /**
   * objectGUID in canonical lower-case form (directory/guid.ts): the mailbox belongs to it, not to the login
   * (issue 13). Absent only for an LDIF entry written without one.
   */
  guid?: string;
  /** sAMAccountName as stored in AD; compare case-insensitively (use `loginKey`). */
  login: string;
  userPrincipalName?: string;
  displayName?: string;
  /** The primary address: `SMTP:` proxyAddress, else `mail`, else the first address. Lower-cased. */
  primaryAddress?: string;
  /** Every address this user receives mail for, lower-cased, primary first. */
  addresses: string[];
  /** userAccountControl ACCOUNTDISABLE (0x2) is off. */
  disabled: boolean;
  /** accountExpires is in the past. */
  expired: boolean;
  /** msDS-User-Account-Control-Computed UF_LOCKOUT (0x10). */
  locked: boolean;
  /** pwdLastSet = 0: the user must change the password at next logon. */
  mustChangePassword: boolean;
  /** Receives mail: not disabled and not expired (locked and must-change still receive). */
  enabled: boolean;
  /** May log in: enabled, not locked, not must-change. */
  canLogin: boolean;
  /** DNs of groups this user is a direct member of (nested expansion is `Directory.groupsOf`). */
  memberOf: string[];
}

export interface GroupEntry {
  kind: 'group';
  dn: string;
  /** objectGUID, canonical lower-case form; absent only for an LDIF entry written without one. */
  guid?: string;
  /** sAMAccountName of the group (falls back to cn); any case, compare with `loginKey`. */
  name: string;
  primaryAddress?: string;
  addresses: string[];
  /** Groups with a `mail` attribute are mail-enabled (distribution list or shared folder). */
  mailEnabled: boolean;
}

export type DirectoryEntry = UserEntry | GroupEntry;

export type PasswordCheck = 'ok' | 'invalid';

export interface DirectoryHealth {
  backend: 'ldap' | 'ldif';
  servers: { url: string; up: boolean; downUntil?: string; lastError?: string }[];
  /** The change watch (directory/watch.ts), when `postern serve` runs one. */
  watch?: WatchHealth;
}

/** How postern follows AD changes, per DC (directory/watch.ts). */
export interface WatchDcHealth {
  url: string;
  /** The mechanism in use on this DC; null before the first connection. */
  mechanism: 'usn-poll' | null;
  /** watching: the DC being followed; standby: reachable or never tried, not followed; down: failed, retried later. */
  state: 'watching' | 'standby' | 'down';
  dsServiceName?: string;
  /** The DC database's invocationId: uSNs are only comparable under the same one. */
  invocationId?: string;
  /** The last uSN whose changes were applied (resume point after a reconnect to the same DC). */
  lastUsn?: number;
  lastPollAt?: string;
  lastChangeAt?: string;
  changes: number;
  /** Reconnections that resumed from lastUsn. */
  resumes: number;
  retryAt?: string;
  lastError?: string;
  /** What the DC's rootDSE announces (supportedControl): change notification, DirSync, show deleted. */
  controls?: { notification: boolean; dirSync: boolean; showDeleted: boolean };
  /**
   * How deletions are seen: `tombstones` (the account may read CN=Deleted Objects: at once, with the objectGUID) or
   * `sweep` (it may not, AD's default for non-admins: the cached objects are checked every deletedSweepSeconds).
   */
  deletions?: 'tombstones' | 'sweep';
}

export interface WatchHealth {
  state: 'watching' | 'down' | 'stopped';
  pollIntervalMs: number;
  /** Changes applied to the cache since start. */
  changes: number;
  /** Moves to a DC with another invocationId (the cache was re-validated, not flushed). */
  failovers: number;
  dcs: WatchDcHealth[];
}

export interface Directory {
  /** User or group owning this address (any case). Disabled entries are returned, with their flags. */
  findAddress(address: string): Promise<DirectoryEntry | null>;
  /** By sAMAccountName, userPrincipalName or primary mail, case-insensitive. */
  findLogin(login: string): Promise<UserEntry | null>;
  /**
   * The user or group whose objectGUID this is (canonical form, any case), wherever it is under the base DN; null
   * when it is gone (deleted, or moved out of the base). For the mailbox lifecycle (src/lifecycle).
   */
  findGuid(guid: string): Promise<DirectoryEntry | null>;
  /** A group by its name (sAMAccountName or cn), any case. */
  findGroup(name: string): Promise<GroupEntry | null>;
  /** Users in the group, nested membership expanded, each once. Includes disabled users: callers filter. */
  members(group: GroupEntry): Promise<UserEntry[]>;
  /** Groups the user belongs to, nested membership expanded. */
  groupsOf(user: UserEntry): Promise<GroupEntry[]>;
  /** Every user / group of the directory (paged for LDAP): for admin pages and the CLI. */
  listUsers(): Promise<UserEntry[]>;
  listGroups(): Promise<GroupEntry[]>;
  /** Checks the password against AD. Throws TempFailure when AD is unreachable. Never called with "". */
  verifyPassword(user: UserEntry, password: string): Promise<PasswordCheck>;
  health(): Promise<DirectoryHealth>;
  close(): Promise<void>;
}

/** Logins, group names and addresses are compared case-insensitively everywhere. */
export function loginKey(name: string): string {
  return name.normalize('NFC').toLowerCase();
}
