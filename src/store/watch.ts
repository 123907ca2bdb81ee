/**
 * The in-process hub of folder changes (issue 5: "changes made by one session or by delivery reach other sessions
 * on the same folder"). Keyed by the folder's Maildir path, so every MaildirMailbox over the same store root in
 * this process shares it: one IMAP session's STORE reaches another session's IDLE without going through the disk.
 */
import type { FolderChange } from './mailbox.js';

export type FolderListener = (change: FolderChange) => void;

export class FolderEvents {
  private readonly listeners = new Map<string, Set<FolderListener>>();

  on(key: string, listener: FolderListener): () => void {
    let set = this.listeners.get(key);
    if (!set) this.listeners.set(key, (set = new Set()));
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0 && this.listeners.get(key) === set) this.listeners.delete(key);
    };
  }

  has(key: string): boolean {
    return (this.listeners.get(key)?.size ?? 0) > 0;
  }

  emit(key: string, change: FolderChange): void {
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

/** The process-wide hub MaildirMailbox uses unless given another. */
export const folderEvents = new FolderEvents();
