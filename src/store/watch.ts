/**
 * The in-process hub of folder changes (issue 5: "changes made by one session or by delivery reach other sessions
 * on the same folder"). Keyed by the folder's Maildir path, so every MaildirMailbox over the same store root in
 * this process shares it: one IMAP session's STORE reaches another session's IDLE without going through the disk.
 */
import type { FolderChange, MailboxListChange } from './mailbox.js';

export type FolderListener = (change: FolderChange) => void;

/**
 * Carries a hub's changes to the other processes serving the same store (imap.workers: src/imap/workers.ts): the
 * keys are Maildir paths, the same in every process, and the changes are plain data.
 */
export type HubBridge<T> = (key: string, change: T) => void;

/** Listeners by key; a change is emitted to the listeners of its key. */
export class EventHub<T> {
  private readonly listeners = new Map<string, Set<(change: T) => void>>();
  private readonly bridges = new Set<HubBridge<T>>();
  private readonly interest = new Set<(key: string, watched: boolean) => void>();
  private readonly foreign = new Set<(key: string) => void>();

  /** Every change emitted here from now on is also handed to `bridge`, until the function returned is called. */
  addBridge(bridge: HubBridge<T>): () => void {
    this.bridges.add(bridge);
    return () => this.bridges.delete(bridge);
  }

  /**
   * Calls `cb(key, true)` when a key gets its first listener and `cb(key, false)` when it loses its last, until the
   * function returned is called: imap.workers tells the other processes which keys this one wants to hear of, so
   * that a change nobody elsewhere listens to is not carried (src/imap/workers.ts).
   */
  onInterest(cb: (key: string, watched: boolean) => void): () => void {
    this.interest.add(cb);
    return () => this.interest.delete(cb);
  }

  /**
   * Calls `cb(key)` for every change of another process or node (emitLocal), whether or not anyone here listens to
   * its key, until the function returned is called: state postgres (maildir-pg-index.ts) knows from it which
   * folders' copies another writer has moved past.
   */
  onForeign(cb: (key: string) => void): () => void {
    this.foreign.add(cb);
    return () => this.foreign.delete(cb);
  }

  /** The keys that have listeners now. */
  watchedKeys(): string[] {
    return [...this.listeners.keys()];
  }

  on(key: string, listener: (change: T) => void): () => void {
    let set = this.listeners.get(key);
    const first = !set;
    if (!set) this.listeners.set(key, (set = new Set()));
    set.add(listener);
    if (first) for (const cb of this.interest) cb(key, true);
    return () => {
      if (!set.delete(listener)) return;
      if (set.size === 0 && this.listeners.get(key) === set) {
        this.listeners.delete(key);
        for (const cb of this.interest) cb(key, false);
      }
    };
  }

  has(key: string): boolean {
    return (this.listeners.get(key)?.size ?? 0) > 0;
  }

  emit(key: string, change: T): void {
    for (const b of this.bridges) b(key, change);
    this.tell(key, change);
  }

  /** A change made by another process (through the bridge): told to this process's listeners only. */
  emitLocal(key: string, change: T): void {
    for (const cb of this.foreign) cb(key);
    this.tell(key, change);
  }

  private tell(key: string, change: T): void {
    const set = this.listeners.get(key);
    if (!set) return;
    // A throwing listener (a session whose socket died) must not keep the others from hearing the change.
    for (const l of [...set]) {
      try {
        l(change);
      } catch {
        /* the listener's own problem */
      }
    }
  }
}

export class FolderEvents extends EventHub<FolderChange> {}

/** The process-wide hub MaildirMailbox uses unless given another. */
export const folderEvents = new FolderEvents();

/**
 * Changes of a mailbox's folder list and subscriptions (RFC 5465 NOTIFY MailboxName / SubscriptionChange), keyed by
 * the owner's Maildir root. In-process, like folder changes between sessions.
 */
export const mailboxListEvents = new EventHub<MailboxListChange>();
