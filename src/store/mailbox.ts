/**
 * The mailbox access contract used by IMAP and POP3 (issue 5), on top of the Maildir++ store. One implementation
 * works on the Maildir with a persistent per-folder index (UIDs, flags, sizes, internal dates, cached envelope and
 * bodystructure) so that opening a 100,000-message folder does not read every message; an in-memory one makes the
 * IMAP command tests fast (STYLE.md "One file per command").
 *
 * UIDs follow RFC 3501 §2.3.1.1: strictly ascending within a folder, never reused while UIDVALIDITY stays; UIDVALIDITY
 * changes only when the index had to be rebuilt without the old UIDs. POP3 UIDLs are derived from INBOX's
 * UIDVALIDITY and UID so both protocols see the same identities.
 */
import type { MailboxOwner } from './types.js';

/** IMAP system flags and keywords, e.g. '\\Seen', '\\Deleted', '$Junk'. */
export type Flag = string;

export interface MessageMeta {
  uid: number;
  /** Bytes as stored (RFC822.SIZE), CRLF. */
  size: number;
  flags: Flag[];
  internalDate: Date;
  /** RFC 8514 save date: when the message was saved into this folder (APPEND, COPY, MOVE, delivery). */
  saveDate?: Date;
  /**
   * RFC 7162 §3.1.1 mod-sequence of the message's last change (arrival, flags, keywords); absent from a store that
   * keeps none (the IMAP side then answers [NOMODSEQ]).
   */
  modseq?: number;
  /** Cached on first need; absent until computed. */
  envelope?: unknown;
  bodystructure?: unknown;
}

export interface FolderState {
  uidValidity: number;
  uidNext: number;
  /**
   * Messages in UID order; the index in this array + 1 is the sequence number. The array is the caller's; the
   * MessageMeta objects may be shared with other callers (a store reuses them while the folder is unchanged): copy
   * one before changing it.
   */
  messages: MessageMeta[];
  /**
   * RFC 7162 HIGHESTMODSEQ: the highest mod-sequence of the folder, raised by every change, expunges included (so
   * that a QRESYNC client sees that something went away).
   */
  modseq: number;
}

/**
 * What SELECT needs of a folder without a MessageMeta per message (RFC 3501 §6.3.1, RFC 7162 §3.1.2.1): counts,
 * UIDs and one lookup, as Dovecot answers from its index header. The messages themselves are read on first need.
 */
export interface FolderSummary {
  uidValidity: number;
  uidNext: number;
  /** HIGHESTMODSEQ; 0 when the store keeps no MODSEQs. */
  modseq: number;
  /** The UIDs of the messages, ascending: index + 1 is the sequence number. */
  uids: Uint32Array;
  /** Sequence number of the first message without \Seen; 0 when all are seen. */
  firstUnseen: number;
  /** The keywords the messages carry (for FLAGS). */
  keywords: string[];
  /**
   * The messages as the store has them when called (synchronous: the store reads its local index), in UID order;
   * the array is the caller's, its objects are shared as in FolderState. It may differ from `uids`: messages added
   * or expunged since, whose changes the folder's watchers are told.
   */
  messages(): MessageMeta[];
}

export interface FolderInfo {
  /** IMAP name with '/' as the hierarchy separator, 'INBOX' for the root. */
  name: string;
  specialUse?: '\\Junk' | '\\Trash' | '\\Sent' | '\\Drafts' | '\\Archive';
  subscribed: boolean;
  hasChildren: boolean;
}

/** `modseq`: the folder's mod-sequence after the change, when the store keeps them (RFC 7162). */
export type FolderChange =
  | { kind: 'exists'; uidNext: number }
  | { kind: 'expunge'; uids: number[]; modseq?: number }
  | { kind: 'flags'; uid: number; flags: Flag[]; modseq?: number };

/**
 * What storeFlags did: the new flags of each message that still exists (the Map), their mod-sequences, and the UIDs
 * left alone because they changed after `unchangedSince` (RFC 7162 §3.1.3 MODIFIED).
 */
export class StoreResult extends Map<number, Flag[]> {
  readonly modseqs = new Map<number, number>();
  readonly modified: number[] = [];
}

/** A change of the folder list or the subscriptions of one mailbox owner, by any session of this process. */
export type MailboxListChange =
  | { kind: 'created'; name: string }
  | { kind: 'deleted'; name: string }
  | { kind: 'renamed'; name: string; oldName: string }
  | { kind: 'subscription'; name: string; subscribed: boolean };

export class FolderNotFound extends Error {
  constructor(readonly folder: string) {
    super(`no such folder: ${folder}`);
    this.name = 'FolderNotFound';
  }
}

export class OverQuota extends Error {
  constructor(message = 'quota exceeded') {
    super(message);
    this.name = 'OverQuota';
  }
}

/** An open message file (MailboxAccess.openMessage); its content never changes while it is open. */
export interface MessageFile {
  readonly size: number;
  /** `length` bytes from `position` in a new buffer, fewer only where the file ends. */
  read(position: number, length: number): Promise<Buffer>;
  close(): Promise<void>;
}

export interface MailboxAccess {
  listFolders(owner: MailboxOwner): Promise<FolderInfo[]>;
  createFolder(owner: MailboxOwner, name: string): Promise<void>;
  /** RFC 3501 §6.3.4: deleting INBOX is an error; a folder with children keeps them. */
  deleteFolder(owner: MailboxOwner, name: string): Promise<void>;
  renameFolder(owner: MailboxOwner, from: string, to: string): Promise<void>;
  subscribe(owner: MailboxOwner, name: string, on: boolean): Promise<void>;
  /** Every subscribed name, including names whose folder no longer exists (RFC 3501 §6.3.6, RFC 5258 \NonExistent). */
  subscriptions(owner: MailboxOwner): Promise<string[]>;

  /** Brings the index up to date with the Maildir (new/ → cur/, new UIDs) and returns the folder. */
  openFolder(owner: MailboxOwner, name: string): Promise<FolderState>;
  /**
   * Like openFolder (the same sync with the Maildir), but returns the folder's summary and reads the messages only
   * when asked. Optional: a store without it is opened with openFolder.
   */
  selectFolder?(owner: MailboxOwner, name: string): Promise<FolderSummary>;
  /** The stored message (with the Return-Path/Delivered-To prefix delivery wrote). */
  readMessage(owner: MailboxOwner, folder: string, uid: number): Promise<Buffer>;
  /**
   * The stored message (the same bytes as readMessage) as an open file to read in pieces, so a large message is
   * never held whole (IMAP FETCH BODY[] streams it). Optional: a store without it is read with readMessage.
   */
  openMessage?(owner: MailboxOwner, folder: string, uid: number): Promise<MessageFile>;
  /**
   * Changes flags; returns the new flags of each message that still exists. With `unchangedSince` (RFC 7162 §3.1.3
   * UNCHANGEDSINCE) a message whose mod-sequence is above it is not changed and is listed in `modified` instead,
   * decided under the same lock as the change.
   */
  storeFlags(
    owner: MailboxOwner,
    folder: string,
    uids: number[],
    mode: 'set' | 'add' | 'remove',
    flags: Flag[],
    opts?: { unchangedSince?: number },
  ): Promise<Map<number, Flag[]> | StoreResult>;
  /** Removes the messages (all \Deleted ones when uids is omitted); returns the UIDs removed. */
  expunge(owner: MailboxOwner, folder: string, uids?: number[]): Promise<number[]>;
  /** RFC 4315 APPENDUID data. Throws OverQuota when the quota would be exceeded. */
  append(owner: MailboxOwner, folder: string, message: Buffer, flags: Flag[], internalDate?: Date): Promise<{ uidValidity: number; uid: number }>;
  /** RFC 4315 COPYUID data; `move` also expunges the sources (RFC 6851). */
  copy(owner: MailboxOwner, from: string, uids: number[], to: string, opts?: { move?: boolean; toOwner?: MailboxOwner }): Promise<{ uidValidity: number; mapping: [number, number][] }>;
  /**
   * RFC 3501 §2.3.2 \Recent: the first UID no session has yet claimed as recent. With `claimUpTo` (a SELECT, or a
   * selected session noticing new messages) every UID below it is claimed, so the next caller sees them as old.
   * Dovecot keeps the same counter (first_recent_uid) per mailbox.
   */
  firstRecentUid(owner: MailboxOwner, folder: string, claimUpTo?: number): Promise<number>;
  /** Quota usage and limit in bytes (0 = none) for GETQUOTAROOT (RFC 9208). */
  quota(owner: MailboxOwner): Promise<{ usedBytes: number; limitBytes: number; messages: number }>;
  /**
   * RFC 7162 §3.2.5.1: UIDs expunged after `modseq`, ascending; undefined when the store does not remember that far
   * back (then the caller falls back as §3.2.5.2 says). Optional: a store without it always gets the fallback.
   */
  vanishedSince?(owner: MailboxOwner, folder: string, modseq: number): Promise<number[] | undefined>;
  /** Calls back on changes made by other sessions or by delivery; returns the unsubscribe function. */
  watch(owner: MailboxOwner, folder: string, listener: (change: FolderChange) => void): () => void;
  /** Calls back when folders of the owner are created, deleted, renamed or (un)subscribed; optional for a store. */
  watchMailboxes?(owner: MailboxOwner, listener: (change: MailboxListChange) => void): () => void;
  /**
   * Resolves once the changes other processes made before now have reached this process's watchers (imap.workers:
   * a round trip through the primary). NOOP and CHECK wait for it, so a poll sees what another session's completed
   * command did. Absent: every change is in-process and already told.
   */
  settle?(): Promise<void>;
}
