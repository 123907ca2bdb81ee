/**
 * The open IMAP, POP3 and ManageSieve sessions by user, so that an AD change that takes a user's access away (disabled,
 * expired, locked out, deleted: directory/watch.ts) ends every session at once instead of at the client's
 * next login. Keys are logins compared case-insensitively (sAMAccountName rules).
 */
import { loginKey } from '../directory/types.js';

export interface ClosableSession {
  protocol: 'imap' | 'pop3' | 'managesieve';
  /** Tells the client why (IMAP `* BYE`, POP3 `-ERR`) and closes the connection. */
  close(reason: string): void;
}

export class SessionRegistry {
  private readonly byUser = new Map<string, Set<ClosableSession>>();

  /** Registers a logged-in session; the returned function unregisters it (call it when the session ends). */
  add(login: string, session: ClosableSession): () => void {
    const key = loginKey(login);
    let set = this.byUser.get(key);
    if (!set) this.byUser.set(key, (set = new Set()));
    const entry = { ...session, login };
    set.add(entry);
    return () => {
      const s = this.byUser.get(key);
      if (!s) return;
      s.delete(entry);
      if (s.size === 0) this.byUser.delete(key);
    };
  }

  /** Closes every session of the user; returns how many were closed, by protocol. */
  closeUser(login: string, reason: string): { imap: number; pop3: number; managesieve: number } {
    const closed = { imap: 0, pop3: 0, managesieve: 0 };
    const set = this.byUser.get(loginKey(login));
    if (!set) return closed;
    this.byUser.delete(loginKey(login));
    for (const s of set) {
      closed[s.protocol]++;
      s.close(reason);
    }
    return closed;
  }

  /** The users with a session open now (as registered). */
  logins(): string[] {
    return [...this.byUser.values()].flatMap((set) => {
      const first = set.values().next().value as (ClosableSession & { login?: string }) | undefined;
      return first?.login ? [first.login] : [];
    });
  }

  count(login: string): number {
    return this.byUser.get(loginKey(login))?.size ?? 0;
  }
}
