/**
 * The embedded directory: an AD-shaped LDIF file mapped by the same rules as a real DC (../mapping.ts), so that
 * `npm start` on a fresh machine behaves as it will against AD. Nested membership is expanded from `member`
 * attributes here, as the DC's in-chain matching rule does. Passwords come from `unicodePwd` (AD's format:
 * UTF-16LE of the quoted password).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dnKey, isGroupEntry, isUserEntry, mapGroup, mapUser, normalizeAddress, type MappingOptions, type RawEntry } from '../mapping.js';
import type { Directory, DirectoryEntry, DirectoryHealth, GroupEntry, PasswordCheck, UserEntry } from '../types.js';
import { loginKey } from '../types.js';
import { parseLdif } from './parse.js';

export function decodeUnicodePwd(value: Buffer): string | null {
  const s = value.toString('utf16le');
  return s.length >= 2 && s.startsWith('"') && s.endsWith('"') ? s.slice(1, -1) : null;
}

export class LdifDirectory implements Directory {
  private readonly raw = new Map<string, RawEntry>();
  private readonly byAddress = new Map<string, DirectoryEntry>();
  private readonly byLogin = new Map<string, UserEntry>();
  private readonly groupsByName = new Map<string, GroupEntry>();
  private readonly byDn = new Map<string, DirectoryEntry>();
  private readonly byGuid = new Map<string, DirectoryEntry>();
  /** child DN → DNs of the groups listing it in `member`. */
  private readonly parents = new Map<string, string[]>();

  constructor(
    entries: RawEntry[],
    private readonly source: string,
    mapping: MappingOptions,
  ) {
    for (const e of entries) {
      if (!isGroupEntry(e)) continue;
      for (const m of e.attrs['member'] ?? []) {
        const list = this.parents.get(dnKey(m)) ?? [];
        list.push(e.dn);
        this.parents.set(dnKey(m), list);
      }
    }
    for (const e of entries) {
      const key = dnKey(e.dn);
      this.raw.set(key, e);
      let mapped: DirectoryEntry;
      if (isUserEntry(e)) {
        // AD computes memberOf from the groups' member lists; an LDIF export may or may not carry it, and may name
        // groups the file does not define (builtin Domain Admins). Both count, as in AD: the union, once per DN.
        const memberOf = new Map<string, string>();
        for (const dn of [...(e.attrs['memberof'] ?? []), ...(this.parents.get(key) ?? [])]) {
          if (!memberOf.has(dnKey(dn))) memberOf.set(dnKey(dn), dn);
        }
        const withMemberOf: RawEntry = { ...e, attrs: { ...e.attrs, memberof: [...memberOf.values()] } };
        const user = mapUser(withMemberOf, mapping);
        this.byLogin.set(loginKey(user.login), user);
        if (user.userPrincipalName) this.byLogin.set(loginKey(user.userPrincipalName), user);
        const mail = e.attrs['mail']?.[0];
        if (mail) this.byLogin.set(loginKey(mail), user);
        if (user.primaryAddress) this.byLogin.set(loginKey(user.primaryAddress), user);
        mapped = user;
      } else if (isGroupEntry(e)) {
        const group = mapGroup(e, mapping);
        this.groupsByName.set(loginKey(group.name), group);
        const cn = e.attrs['cn']?.[0];
        if (cn && !this.groupsByName.has(loginKey(cn))) this.groupsByName.set(loginKey(cn), group);
        mapped = group;
      } else {
        continue;
      }
      this.byDn.set(key, mapped);
      if (mapped.guid) this.byGuid.set(mapped.guid, mapped);
      for (const a of mapped.addresses) {
        // Users win over groups for a duplicated address, as in the LDAP backend.
        if (!this.byAddress.has(a) || (mapped.kind === 'user' && this.byAddress.get(a)!.kind === 'group')) this.byAddress.set(a, mapped);
      }
    }
  }

  static fromFile(file: string, mapping: MappingOptions): LdifDirectory {
    return new LdifDirectory(parseLdif(readFileSync(file, 'utf8')), file, mapping);
  }

  async findAddress(address: string): Promise<DirectoryEntry | null> {
    const a = normalizeAddress(address);
    return a ? (this.byAddress.get(a) ?? null) : null;
  }

  async findLogin(login: string): Promise<UserEntry | null> {
    return this.byLogin.get(loginKey(login.trim())) ?? null;
  }

  async findGuid(guid: string): Promise<DirectoryEntry | null> {
    return this.byGuid.get(guid.trim().toLowerCase()) ?? null;
  }

  async findGroup(name: string): Promise<GroupEntry | null> {
    return this.groupsByName.get(loginKey(name.trim())) ?? null;
  }

  async members(group: GroupEntry): Promise<UserEntry[]> {
    const users = new Map<string, UserEntry>();
    const seen = new Set<string>();
    const walk = (dn: string) => {
      const key = dnKey(dn);
      if (seen.has(key)) return; // membership cycles exist in real ADs
      seen.add(key);
      for (const m of this.raw.get(key)?.attrs['member'] ?? []) {
        const entry = this.byDn.get(dnKey(m));
        if (entry?.kind === 'user') users.set(dnKey(m), entry);
        else if (entry?.kind === 'group') walk(m);
      }
    };
    walk(group.dn);
    return [...users.values()];
  }

  async groupsOf(user: UserEntry): Promise<GroupEntry[]> {
    const groups = new Map<string, GroupEntry>();
    const walk = (dn: string) => {
      for (const p of this.parents.get(dnKey(dn)) ?? []) {
        const key = dnKey(p);
        const g = this.byDn.get(key);
        if (g?.kind !== 'group' || groups.has(key)) continue;
        groups.set(key, g);
        walk(p);
      }
    };
    walk(user.dn);
    return [...groups.values()];
  }

  async listUsers(): Promise<UserEntry[]> {
    return [...this.byDn.values()].filter((e): e is UserEntry => e.kind === 'user');
  }

  async listGroups(): Promise<GroupEntry[]> {
    return [...this.byDn.values()].filter((e): e is GroupEntry => e.kind === 'group');
  }

  async verifyPassword(user: UserEntry, password: string): Promise<PasswordCheck> {
    if (password === '') return 'invalid';
    const stored = this.raw.get(dnKey(user.dn))?.binary['unicodepwd']?.[0];
    const expected = stored ? decodeUnicodePwd(stored) : null;
    if (expected === null) return 'invalid';
    // Compare digests so the comparison takes the same time whatever the lengths.
    const h = (s: string) => createHash('sha256').update(s, 'utf8').digest();
    return timingSafeEqual(h(expected), h(password)) ? 'ok' : 'invalid';
  }

  async health(): Promise<DirectoryHealth> {
    return { backend: 'ldif', servers: [{ url: `file://${this.source}`, up: true }] };
  }

  async close(): Promise<void> {}
}
