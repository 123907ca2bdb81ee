/**
 * RFC 1939 §8: "the POP3 server acquires an exclusive-access lock on the maildrop" for the TRANSACTION state. One
 * postern holds its locks in memory (LocalMaildropLocks); nodes of a cluster on PostgreSQL also hold a lease row
 * there (state/postgres/maildrop-locks.ts), so a session on node A refuses node B.
 */

export interface MaildropLocks {
  /**
   * 'ok' when the caller now holds the maildrop `key`, 'in-use' when another session (of this node or another)
   * does. Throws (TempFailure) when the lock store cannot answer: the login is then answered -ERR [SYS/TEMP].
   */
  acquire(key: string): Promise<'ok' | 'in-use'>;
  /** Gives the lock back; never throws (a lease that could not be deleted expires by itself). */
  release(key: string): void;
}

/** The locks of one process: the plain and the TLS listener of one mailbox share an instance. */
export class LocalMaildropLocks implements MaildropLocks {
  private readonly held = new Set<string>();

  acquire(key: string): Promise<'ok' | 'in-use'> {
    if (this.held.has(key)) return Promise.resolve('in-use');
    this.held.add(key);
    return Promise.resolve('ok');
  }

  release(key: string): void {
    this.held.delete(key);
  }

  /** Whether `key` is held here (no round trip): backends that add a shared lock check this first. */
  has(key: string): boolean {
    return this.held.has(key);
  }
}
