/**
 * POP3 maildrop locks shared by the nodes of a cluster (issue 16; RFC 1939 §8): a lease row per locked maildrop in
 * PostgreSQL (`pop3_maildrop_locks`, schema/migrations-postgres/050-mail.sql). A row is taken when it is absent or its
 * lease has run out, renewed while the session lives, and deleted at the end of the session.
 *
 * A lease rather than a session-level advisory lock: an advisory lock lives on one connection, so a node would need
 * a connection held for every POP3 session (or one connection whose loss silently frees every lock of the node); a
 * row names its holder, survives a PostgreSQL restart, and a SIGKILLed node's locks free themselves after the lease.
 */
import { randomUUID } from 'node:crypto';
import { TempFailure } from '../../lib/errors.js';
import type { Logger } from '../../lib/logger.js';
import { LocalMaildropLocks, type MaildropLocks } from '../../pop3/maildrop-locks.js';
import type { Queryable } from './queryable.js';

/** A lock whose holder died is free after this long (a POP3 client retries; Dovecot's dot-locks go stale too). */
export const DEFAULT_LEASE_MS = 60_000;

export interface PgMaildropLocksOptions {
  db: Queryable;
  /** This node's id, kept in the row (who holds the lock, for an admin reading the table). */
  node: string;
  log: Logger;
  leaseMs?: number;
}

export class PgMaildropLocks implements MaildropLocks {
  private readonly local = new LocalMaildropLocks();
  /** Token of each lock this node holds in the table. */
  private readonly tokens = new Map<string, string>();
  private readonly leaseMs: number;
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly opts: PgMaildropLocksOptions) {
    this.leaseMs = opts.leaseMs ?? DEFAULT_LEASE_MS;
    // Renewed three times per lease: one or two renewals lost to a PostgreSQL hiccup do not free a live session.
    this.timer = setInterval(() => void this.renew(), Math.max(50, Math.floor(this.leaseMs / 3)));
    this.timer.unref();
  }

  async acquire(key: string): Promise<'ok' | 'in-use'> {
    // This node's own sessions are refused without a round trip.
    if ((await this.local.acquire(key)) === 'in-use') return 'in-use';
    const token = randomUUID();
    try {
      const r = await this.opts.db.query(
        `INSERT INTO pop3_maildrop_locks (maildrop, node, token, expires_at)
         VALUES ($1, $2, $3, clock_timestamp() + $4 * interval '1 millisecond')
         ON CONFLICT (maildrop) DO UPDATE SET node = excluded.node, token = excluded.token, expires_at = excluded.expires_at
           WHERE pop3_maildrop_locks.expires_at < clock_timestamp()
         RETURNING token`,
        [key, this.opts.node, token, this.leaseMs],
      );
      if (r.rows.length === 0) {
        this.local.release(key);
        return 'in-use';
      }
      this.tokens.set(key, token);
      return 'ok';
    } catch (err) {
      this.local.release(key);
      throw new TempFailure('maildrop lock store unavailable', { cause: err });
    }
  }

  release(key: string): void {
    const token = this.tokens.get(key);
    this.tokens.delete(key);
    this.local.release(key);
    if (token === undefined) return;
    this.opts.db.query('DELETE FROM pop3_maildrop_locks WHERE maildrop = $1 AND token = $2', [key, token]).catch((err: unknown) => {
      this.opts.log.warn({ err, maildrop: key }, 'pop3: cannot release the maildrop lock; it expires with its lease');
    });
  }

  close(): void {
    clearInterval(this.timer);
  }

  private async renew(): Promise<void> {
    if (this.tokens.size === 0) return;
    const tokens = [...this.tokens.values()];
    try {
      const r = await this.opts.db.query(
        `UPDATE pop3_maildrop_locks SET expires_at = clock_timestamp() + $2 * interval '1 millisecond'
         WHERE token = ANY($1::text[]) RETURNING token`,
        [tokens, this.leaseMs],
      );
      if (r.rows.length < tokens.length) {
        // A lease ran out while PostgreSQL was away and another node may have taken it: said, not hidden.
        const kept = new Set(r.rows.map((x) => (x as { token: string }).token));
        const lost = [...this.tokens].filter(([, t]) => !kept.has(t)).map(([k]) => k);
        if (lost.length) this.opts.log.warn({ maildrops: lost }, 'pop3: maildrop lock leases were lost');
      }
    } catch (err) {
      this.opts.log.warn({ err }, 'pop3: cannot renew maildrop lock leases');
    }
  }
}
