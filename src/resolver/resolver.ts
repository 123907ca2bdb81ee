/**
 * `resolve(address, context)`: the single answer every component asks (DESIGN.md §3). It combines the runtime
 * settings (domains, pseudonyms, per-user forward, always-Bcc) with the directory. The directory failing to answer
 * propagates as TempFailure; callers map it to 451 4.4.3 / exit 75.
 */
import type { Directory, GroupEntry, UserEntry } from '../directory/types.js';
import { domainOf, normalizeAddress } from '../directory/mapping.js';
import type { Forward, Resolution, ResolveContext } from './types.js';

/** What the resolver needs from the settings store (src/settings). */
export interface ResolverSettings {
  getDomain(name: string): { name: string; type: 'local' | 'relay'; nexthop?: string | null; bcc?: string | null } | undefined | null;
  findPseudonym(address: string): { target: { kind: 'user' | 'group'; name: string }; localNetworkOnly: boolean } | undefined | null;
  getUser(login: string): { forward?: string | null; keepCopy?: boolean } | undefined | null;
  get(key: 'queue.alwaysBcc'): string | null | undefined;
}

export interface GroupDeliveryOption {
  groupDelivery: 'distribution' | 'shared';
  /**
   * Whether the account has a mailbox now (src/lifecycle: `mailbox.enabledGroup`, orphaned mailboxes). Absent:
   * every enabled account has one.
   */
  mailboxEnabled?: (user: UserEntry) => Promise<boolean>;
}

export class Resolver {
  constructor(
    private readonly directory: Directory,
    private readonly settings: ResolverSettings,
    private readonly opts: GroupDeliveryOption,
  ) {}

  async resolve(input: string, context: ResolveContext = {}): Promise<Resolution> {
    const address = normalizeAddress(input);
    const globalBcc = this.settings.get('queue.alwaysBcc') || undefined;
    if (!address) {
      return { kind: 'invalid', reason: 'syntax', address: input.trim().toLowerCase(), localNetworkOnly: false, bcc: [] };
    }
    const domainName = domainOf(address);
    const domain = this.settings.getDomain(domainName);
    const bcc = unique([domain?.bcc ?? undefined, globalBcc]);
    if (!domain) return { kind: 'external', address, domain: domainName, localNetworkOnly: false, bcc: unique([globalBcc]) };
    if (domain.type === 'relay') {
      return { kind: 'relay', address, domain: domain.name, nexthop: domain.nexthop ?? domain.name, localNetworkOnly: false, bcc };
    }

    const pseudonym = this.settings.findPseudonym(address);
    const localNetworkOnly = pseudonym?.localNetworkOnly ?? false;
    const base = { address, localNetworkOnly, bcc };
    if (localNetworkOnly && context.fromLocalNetwork === false) {
      return { ...base, kind: 'invalid', reason: 'local-network-only' };
    }

    if (pseudonym) {
      const { kind, name } = pseudonym.target;
      const target = kind === 'user' ? await this.directory.findLogin(name) : await this.directory.findGroup(name);
      if (!target) return { ...base, kind: 'invalid', reason: 'unknown' };
      return target.kind === 'user' ? this.forUser(target, base, 'pseudonym') : this.forGroup(target, base, 'pseudonym');
    }

    const entry = await this.directory.findAddress(address);
    // The seed: only groups with a `mail` attribute receive mail (an alias in proxyAddresses alone is not enough).
    if (!entry || (entry.kind === 'group' && !entry.mailEnabled)) return { ...base, kind: 'invalid', reason: 'unknown' };
    return entry.kind === 'user' ? this.forUser(entry, base, 'directory') : this.forGroup(entry, base, 'directory');
  }

  private async forUser(user: UserEntry, base: { address: string; localNetworkOnly: boolean; bcc: string[] }, via: 'directory' | 'pseudonym'): Promise<Resolution> {
    // Disabled and expired accounts receive no mail; locked and must-change ones do (DESIGN.md §3).
    if (!user.enabled) return { ...base, kind: 'invalid', reason: 'disabled' };
    // No mailbox (not in mailbox.enabledGroup, or orphaned): the same "unknown" as an address nobody owns (550 5.1.1).
    if (this.opts.mailboxEnabled && !(await this.opts.mailboxEnabled(user))) return { ...base, kind: 'invalid', reason: 'unknown' };
    const override = this.settings.getUser(user.login);
    const forward: Forward | undefined = override?.forward ? { address: override.forward, keepCopy: override.keepCopy ?? false } : undefined;
    return { ...base, kind: 'mailbox', user, via, ...(forward ? { forward } : {}) };
  }

  private async forGroup(group: GroupEntry, base: { address: string; localNetworkOnly: boolean; bcc: string[] }, via: 'directory' | 'pseudonym'): Promise<Resolution> {
    const members = (await this.directory.members(group)).filter((m) => m.enabled);
    // Deduplicate by DN: a user reached through two nested groups gets one copy.
    const unique = [...new Map(members.map((m) => [m.dn.toLowerCase(), m])).values()].sort((a, b) => a.login.localeCompare(b.login));
    const kind = this.opts.groupDelivery === 'shared' ? 'shared' : 'list';
    return { ...base, kind, group, members: unique, via };
  }
}

function unique(values: (string | undefined | null)[]): string[] {
  return [...new Set(values.filter((v): v is string => !!v).map((v) => v.toLowerCase()))];
}
