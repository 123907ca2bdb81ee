/**
 * The mailbox store contract (DESIGN.md §3 "Store"): Maildir++ with Dovecot's folder names. Delivery writes through
 * it; the IMAP and POP3 servers (a later issue) read and change it through the same object.
 */
import type { Readable } from 'node:stream';

/**
 * Whose mailbox: a user's or a group's shared folder (by group name, case-insensitive). A user's mailbox belongs to
 * the AD object (`guid`, its objectGUID) when known; `login` (case-insensitive) names it in logs and settings and, in
 * a store without a mailbox registry (tests, tools), places it on disk.
 */
export type MailboxOwner = { kind: 'user'; login: string; guid?: string } | { kind: 'shared'; group: string };

/** The owner of a user's mailbox: the AD object when it has an objectGUID. */
export function userOwner(user: { login: string; guid?: string }): MailboxOwner {
  return user.guid ? { kind: 'user', login: user.login, guid: user.guid } : { kind: 'user', login: user.login };
}

export interface DeliverOptions {
  /** Maildir++ folder: 'INBOX' (the Maildir root) or a folder name like 'Junk' ('.Junk'). Created if missing. */
  folder?: string;
  /** Quota in bytes for this owner (0 or undefined = none). Over quota → QuotaExceeded thrown, nothing written. */
  quotaBytes?: number;
  /** Maildir flags to store (e.g. 'S' for seen). */
  flags?: string;
  /**
   * A durable file (written and fsynced, never changed) whose bytes are exactly the prefix and then the message
   * (a Buffer): the store may hard-link it into the folder instead of writing the message again. When the link
   * cannot be made (another file system, the file gone), the message is written as usual.
   */
  linkFrom?: string;
}

export interface Delivered {
  /** Absolute path of the file in new/ (or cur/ when flags are given). */
  path: string;
  size: number;
}

export interface QuotaUsage {
  bytes: number;
  messages: number;
}

export interface MailStore {
  /**
   * Writes one message: tmp/ → fsync → link into new/ → fsync new/ (the Maildir protocol). The message is given
   * whole with CRLF line ends; `prefix` (Return-Path, Delivered-To) is written before it.
   */
  deliver(owner: MailboxOwner, message: Buffer | Readable, opts?: DeliverOptions & { prefix?: string }): Promise<Delivered>;
  /** Bytes and messages counted against the quota (Maildir++ maildirsize, recalculated when missing). */
  quotaUsage(owner: MailboxOwner): Promise<QuotaUsage>;
  /** The Maildir root of an owner (created on first delivery). */
  maildirPath(owner: MailboxOwner): string;
}

export class QuotaExceeded extends Error {
  constructor(
    readonly owner: MailboxOwner,
    readonly usage: QuotaUsage,
    readonly quotaBytes: number,
  ) {
    super(`mailbox over quota (${usage.bytes} of ${quotaBytes} bytes)`);
    this.name = 'QuotaExceeded';
  }
}
