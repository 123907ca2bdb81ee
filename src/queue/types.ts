/**
 * The queue contract (DESIGN.md §3 "Queue"): the spool on disk is the truth. A message is two files in
 * `${dataDir}/queue/`: `<id>.eml` (the message, CRLF, never changed) and `<id>.json` (this envelope, rewritten
 * atomically as delivery proceeds). The envelope appearing is the commit point.
 */

export type RecipientState = 'pending' | 'delivered' | 'failed';

export interface QueueRecipient {
  /** The address as given in RCPT TO (lower-cased). */
  address: string;
  /** For a recipient added by expansion (list member, Bcc, forward): the RCPT TO address it came from. */
  parent?: string;
  /** Why it was added: rcpt (the client named it), bcc, forward, keep-copy, list, shared. */
  origin?: 'rcpt' | 'bcc' | 'forward' | 'list' | 'shared';
  /**
   * Where it goes: a user's or a group's mailbox, or a remote address (MX, relay next hop or smarthost). Decided
   * again at each attempt while the recipient is pending (routes follow settings changed after queueing); kept
   * once it is final, so that a copy reached through another path is recognised as a duplicate.
   */
  route?: { kind: 'user'; login: string; guid?: string } | { kind: 'shared'; group: string } | { kind: 'remote'; nexthop?: string };
  state: RecipientState;
  attempts: number;
  /** Last reply or error, e.g. "452 4.2.2 mailbox full". */
  lastResult?: string;
  /** RFC 3463 status for DSNs, e.g. "5.1.1". */
  status?: string;
  /** Remote MTA that answered, for DSNs. */
  remoteMta?: string;
  deliveredAt?: string;
  /** Bcc copies are never named in DSNs. */
  hidden?: boolean;
}

export interface QueueEnvelope {
  id: string;
  /** MAIL FROM; '' is the null reverse-path `<>` (no DSN is ever sent to it). */
  from: string;
  recipients: QueueRecipient[];
  /** ISO time the message was accepted. */
  receivedAt: string;
  /** Who sent it: for logs, Received and policy decisions made at delivery time. */
  client: { address: string; helo?: string; user?: string; listener: 'smtp' | 'submission' | 'smtps' | 'local' };
  size: number;
  attempts: number;
  /** ISO time of the next delivery attempt. */
  nextAttemptAt: string;
  lastAttemptAt?: string;
  /** Spam verdict from the filters (a later issue): delivery files marked messages into Junk. */
  spam?: boolean;
  /**
   * Text (UTF-8) that `<id>.eml` holds ahead of the message and that is not part of it: the Return-Path and
   * Delivered-To lines local delivery would add for the (single) recipient, so that delivery can hard-link the
   * spool file into the Maildir (src/queue/spool.ts). Absent: the file is the message. `size` excludes it.
   */
  spoolPrefix?: string;
  /**
   * SHA-1 (hex) of `<id>.eml` as enqueue wrote it (spoolPrefix and message). The names of a commit may reach the
   * disk before its data (src/queue/spool.ts), and on a file system without a journal or with data=writeback a
   * crash can leave the file at its full length but zero-filled: recover() drops a message whose bytes do not
   * match. Absent in envelopes written before it was added (then only the length is checked).
   */
  sha1?: string;
}

/** A queued message's file as it lies in the spool: `prefix` (the envelope's spoolPrefix) and then the message. */
export interface SpooledFile {
  path: string;
  prefix: string;
}

/** What a delivery agent reports for one recipient. */
export type DeliveryResult =
  | { recipient: string; outcome: 'delivered'; detail?: string; remoteMta?: string }
  | { recipient: string; outcome: 'tempfail' | 'bounce'; code: number; status: string; detail: string; remoteMta?: string };

/**
 * A queue whose metadata is shared by several nodes (state postgres, issue 16): instead of each scheduler tracking
 * the directory, a node claims due messages for a lease, renews it while it delivers, and gives the message back
 * with its next attempt (Spool.update) or takes it out (Spool.remove). A claim that its node does not renew (the
 * node died) runs out, and the message is due again for every node: delivery stays at-least-once.
 */
export interface QueueClaims {
  /** Up to `limit` due messages, claimed by this node now (none claimed by a live lease elsewhere). */
  claimDue(limit: number): Promise<QueueEnvelope[]>;
  /** Gives back a claimed message without an attempt's outcome, due again at `nextAttemptAt` (ISO). */
  release(id: string, nextAttemptAt: string): Promise<void>;
  /** Stops renewing leases (the server is stopping; its deliveries have ended). */
  stop(): Promise<void>;
}
