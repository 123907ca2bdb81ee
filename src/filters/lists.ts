/**
 * The seed's "Rules by mail address" (Email > Filter): Block from, Allow from, Allow to.
 *
 * - blockFrom (mail phase): a sender on `filter.lists.blockFrom` is refused at MAIL FROM,
 *   `554 5.7.1 Sender address rejected: blocked by policy` (Postfix's access-map code).
 * - allowFrom (mail phase): a sender on `filter.lists.allowFrom` is tagged `spamExempt: true`.
 * - allowTo (rcpt phase): each recipient on `filter.lists.allowTo` is added to `spamExemptRecipients`.
 *
 * The allow lists only exempt from the spam checks: the antivirus stage ignores these tags ("Antivirus checks are
 * enforced despite whitelist settings", seed).
 *
 * Matching: entries are stored normalised (lower case, domains in ASCII form). An address entry matches that
 * address only. A domain entry ("corp.example" or "@corp.example") matches the domain and its subdomains
 * (mail.corp.example), as Postfix's access maps do by default (parent_domain_matches_subdomains): spam and the
 * senders an admin trusts alike come from hosts-named subdomains, and a list of every one would never be complete.
 * The envelope sender is what is matched (the header From is the content filters' business); the null sender `<>`
 * matches nothing.
 */
import { domainToASCII } from 'node:url';
import type { SettingKey, SettingValue } from '../settings/keys.js';
import { ACCEPT, type FilterStage, type FilterVerdict } from './types.js';

/** What the list stages need from Settings. */
export interface SettingsReader {
  get<K extends SettingKey>(key: K): SettingValue<K>;
}

export interface ListStageDeps {
  settings: SettingsReader;
}

export const BLOCKED_SENDER_REPLY = { code: 554, enhanced: '5.7.1', text: 'Sender address rejected: blocked by policy' } as const;

/** Splits and normalises an address for matching; null for the null sender or something without a domain. */
export function addressForMatching(address: string | undefined): { address: string; domain: string } | null {
  if (!address) return null;
  const at = address.lastIndexOf('@');
  if (at <= 0 || at === address.length - 1) return null;
  const local = address.slice(0, at).toLowerCase();
  const rawDomain = address.slice(at + 1).replace(/\.$/, '').toLowerCase();
  // Address literals ([192.0.2.1]) are compared as typed; names in their ASCII form, as the settings store them.
  const domain = rawDomain.startsWith('[') ? rawDomain : domainToASCII(rawDomain) || rawDomain;
  return { address: `${local}@${domain}`, domain };
}

/** The list entry `address` matches, or null. See the module comment for the rules. */
export function matchList(entries: readonly string[], address: string | undefined): string | null {
  const a = addressForMatching(address);
  if (!a) return null;
  for (const entry of entries) {
    if (entry.includes('@')) {
      if (entry === a.address) return entry;
    } else if (a.domain === entry || a.domain.endsWith(`.${entry}`)) {
      return entry;
    }
  }
  return null;
}

export function blockFrom({ settings }: ListStageDeps): FilterStage {
  return {
    name: 'blockFrom',
    phase: 'mail',
    async check(ctx): Promise<FilterVerdict> {
      const entry = matchList(settings.get('filter.lists.blockFrom'), ctx.from);
      if (!entry) return ACCEPT;
      return { action: 'reject', reply: { ...BLOCKED_SENDER_REPLY }, tags: { blockedSender: entry } };
    },
  };
}

export function allowFrom({ settings }: ListStageDeps): FilterStage {
  return {
    name: 'allowFrom',
    phase: 'mail',
    async check(ctx): Promise<FilterVerdict> {
      const entry = matchList(settings.get('filter.lists.allowFrom'), ctx.from);
      if (!entry) return ACCEPT;
      return { action: 'accept', tags: { spamExempt: true, allowFromEntry: entry } };
    },
  };
}

export function allowTo({ settings }: ListStageDeps): FilterStage {
  return {
    name: 'allowTo',
    phase: 'rcpt',
    async check(ctx): Promise<FilterVerdict> {
      if (!ctx.rcpt || !matchList(settings.get('filter.lists.allowTo'), ctx.rcpt)) return ACCEPT;
      const before = Array.isArray(ctx.tags.spamExemptRecipients) ? (ctx.tags.spamExemptRecipients as string[]) : [];
      if (before.includes(ctx.rcpt)) return ACCEPT;
      return { action: 'accept', tags: { spamExemptRecipients: [...before, ctx.rcpt] } };
    },
  };
}

/** The three list stages in the order they run (block before allow: a sender on both is blocked). */
export function listStages(deps: ListStageDeps): FilterStage[] {
  return [blockFrom(deps), allowFrom(deps), allowTo(deps)];
}
