import type { GroupEntry, UserEntry } from '../directory/types.js';

/** Why an address is not ours to accept. Callers map these to replies (unknown → 550 5.1.1, disabled → 550 5.2.1). */
export type InvalidReason = 'syntax' | 'unknown' | 'disabled' | 'local-network-only';

interface Common {
  /** The address asked about, normalised (lower case). */
  address: string;
  /** A pseudonym marked "local network only" (the seed's Email addresses page). */
  localNetworkOnly: boolean;
  /** Hidden copies to add for this recipient: the domain's always-Bcc and the global always-Bcc. */
  bcc: string[];
}

export interface Forward {
  address: string;
  keepCopy: boolean;
}

export type Resolution =
  | (Common & { kind: 'mailbox'; user: UserEntry; forward?: Forward; via: 'directory' | 'pseudonym' })
  /** Distribution list: a copy to each enabled member, nested groups expanded, no duplicates. */
  | (Common & { kind: 'list'; group: GroupEntry; members: UserEntry[]; via: 'directory' | 'pseudonym' })
  /** Group in shared mode: one copy into the group's shared folder; `members` may read it. */
  | (Common & { kind: 'shared'; group: GroupEntry; members: UserEntry[]; via: 'directory' | 'pseudonym' })
  | (Common & { kind: 'relay'; domain: string; nexthop: string })
  | (Common & { kind: 'external'; domain: string })
  | (Common & { kind: 'invalid'; reason: InvalidReason });

export type ResolutionKind = Resolution['kind'];

export interface ResolveContext {
  /**
   * Whether the mail comes from the local network (trusted networks or an authenticated user). When false, a
   * "local network only" address resolves to `invalid` / `local-network-only`. When undefined (CLI lookups),
   * the resolution is returned with its flag and nothing is refused.
   */
  fromLocalNetwork?: boolean;
}
