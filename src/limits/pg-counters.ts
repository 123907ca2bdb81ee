/**
 * Send-limit counters on PostgreSQL (issue 16, `state.type: postgres`): one set of counters for every node, so
 * that "500 messages per hour" holds for a user whose sessions land on two nodes at once. The tables are in
 * schema/migrations-postgres/031-send-limits.sql.
 *
 * Exact across nodes: a check (MAIL FROM, RCPT TO) and a commit (DATA answered 250) each run in one transaction that
 * first takes the advisory locks of its keys (in sorted order: no deadlock between a user key and an address key),
 * then reads the window's counts plus the open reservations and adds its own. Two nodes checking the same user at
 * the same moment are thus serialised on that key and the second sees the first's reservation: N accepted, the
 * next refused, whichever node they came through (test/unit/state/limits-shared.test.ts counts them).
 *
 * The minute of a count is the node's clock (as limits.db's); nodes of a cluster keep their clocks in step (NTP).
 */
import type { PgState } from '../state/postgres/pool.js';
import type { SendLimitAlert } from './send-limits.js';
import { WINDOW_MINUTES, type BucketRow, type Count } from './window.js';

/** A key and its limit for this check (0 = none: not checked, still reserved so that it is counted). */
export interface KeyLimit {
  key: string;
  limit: number;
}

export interface Over {
  key: string;
  what: keyof Count;
  count: number;
  limit: number;
}

/** What SendLimits needs of a shared counter store. Every method throws TempFailure when PostgreSQL cannot answer. */
export interface SharedCounters {
  /** MAIL FROM: refuses (returns the first key over its message limit) or reserves one message under `id`. */
  reserveMail(id: string, user: KeyLimit, ip: KeyLimit | undefined, minute: number): Promise<Over | null>;
  /** RCPT TO: refuses (the first key over its recipient limit) or adds one recipient to reservation `id`. */
  reserveRcpt(id: string, user: KeyLimit, ip: KeyLimit | undefined, minute: number): Promise<Over | null>;
  /** DATA answered 250: reservation `id` becomes one message and its recipients in `minute`'s counts. */
  commit(id: string, minute: number): Promise<void>;
  /** The transaction ended without a 250. */
  release(id: string): Promise<void>;
  /** An admin's reset of one key: its counts and its alert go. True when it had any count. */
  reset(key: string, minute: number): Promise<boolean>;
  /** The counts of the window ending at `minute`, and the recent alerts (newest first), for status(). */
  snapshot(minute: number, alerts: number): Promise<{ rows: BucketRow[]; alerts: SendLimitAlert[] }>;
  /** True for the one node that is to log this alert (none logged for `key` within the window). */
  claimAlert(alert: SendLimitAlert, key: string): Promise<boolean>;
}

/** How long a reservation counts when its node never commits nor releases it (killed mid-transaction). */
const RESERVATION_S = 15 * 60;

/** bigint key of a counter key for pg_advisory_xact_lock. */
const LOCK = 'SELECT pg_advisory_xact_lock(hashtextextended($1, 7130))';

export class PgSendCounters implements SharedCounters {
  constructor(private readonly pg: Pick<PgState, 'query' | 'transaction'>) {}

  reserveMail(id: string, user: KeyLimit, ip: KeyLimit | undefined, minute: number): Promise<Over | null> {
    return this.check(user, ip, minute, 'messages', async (c) => {
      await c.query(
        `INSERT INTO send_reservations (id, user_key, ip_key, expires_at) VALUES ($1, $2, $3, now() + make_interval(secs => $4))
         ON CONFLICT (id) DO NOTHING`,
        [id, user.key, ip?.key ?? null, RESERVATION_S],
      );
    });
  }

  reserveRcpt(id: string, user: KeyLimit, ip: KeyLimit | undefined, minute: number): Promise<Over | null> {
    return this.check(user, ip, minute, 'recipients', async (c) => {
      await c.query('UPDATE send_reservations SET recipients = recipients + 1 WHERE id = $1', [id]);
    });
  }

  private check(user: KeyLimit, ip: KeyLimit | undefined, minute: number, what: keyof Count, reserve: (c: Client) => Promise<void>): Promise<Over | null> {
    const keys = ip ? [user, ip] : [user];
    return this.pg.transaction(async (c) => {
      for (const k of [...keys].sort((a, b) => (a.key < b.key ? -1 : 1))) await c.query(LOCK, [k.key]);
      for (const k of keys) {
        if (k.limit <= 0) continue;
        const r = await c.query<{ counted: number; reserved: number }>(
          `SELECT (SELECT coalesce(sum(${what}), 0) FROM send_counts WHERE key = $1 AND minute > $2 AND minute <= $3)::bigint AS counted,
                  (SELECT ${what === 'messages' ? 'count(*)' : 'coalesce(sum(recipients), 0)'} FROM send_reservations
                    WHERE (user_key = $1 OR ip_key = $1) AND expires_at > now())::bigint AS reserved`,
          [k.key, minute - WINDOW_MINUTES, minute],
        );
        const { counted, reserved } = r.rows[0]!;
        if (counted + reserved >= k.limit) return { key: k.key, what, count: counted, limit: k.limit };
      }
      await reserve(c);
      return null;
    });
  }

  async commit(id: string, minute: number): Promise<void> {
    const r = await this.pg.query<{ user_key: string; ip_key: string | null }>('SELECT user_key, ip_key FROM send_reservations WHERE id = $1', [id]);
    const row = r.rows[0];
    if (!row) return;
    const keys = [row.user_key, ...(row.ip_key ? [row.ip_key] : [])].sort();
    await this.pg.transaction(async (c) => {
      // The locks of the checks: a check never sees the reservation gone and its count not yet there.
      for (const k of keys) await c.query(LOCK, [k]);
      const d = await c.query<{ recipients: number }>('DELETE FROM send_reservations WHERE id = $1 RETURNING recipients', [id]);
      if (!d.rowCount) return;
      const recipients = d.rows[0]!.recipients;
      await c.query(
        `INSERT INTO send_counts (key, minute, messages, recipients) SELECT k, $2, 1, $3 FROM unnest($1::text[]) AS k
         ON CONFLICT (key, minute) DO UPDATE SET messages = send_counts.messages + 1, recipients = send_counts.recipients + excluded.recipients`,
        [keys, minute, recipients],
      );
    });
  }

  async release(id: string): Promise<void> {
    await this.pg.query('DELETE FROM send_reservations WHERE id = $1', [id]);
  }

  async reset(key: string, minute: number): Promise<boolean> {
    return this.pg.transaction(async (c) => {
      await c.query(LOCK, [key]);
      const had = await c.query('SELECT 1 FROM send_counts WHERE key = $1 AND minute > $2 AND (messages > 0 OR recipients > 0) LIMIT 1', [key, minute - WINDOW_MINUTES]);
      await c.query('DELETE FROM send_counts WHERE key = $1', [key]);
      await c.query('DELETE FROM send_alerts WHERE key = $1', [key]);
      return (had.rowCount ?? 0) > 0;
    });
  }

  async snapshot(minute: number, alerts: number): Promise<{ rows: BucketRow[]; alerts: SendLimitAlert[] }> {
    const [rows, al] = await Promise.all([
      this.pg.query<BucketRow>('SELECT key, minute, messages, recipients FROM send_counts WHERE minute > $1 AND minute <= $2', [minute - WINDOW_MINUTES, minute]),
      this.pg.query<{ alert: SendLimitAlert }>('SELECT alert FROM send_alerts ORDER BY at DESC LIMIT $1', [alerts]),
    ]);
    // Old minutes go with the reads (one node or another, every refresh: a cheap indexed delete).
    await this.pg.query('DELETE FROM send_counts WHERE minute <= $1', [minute - WINDOW_MINUTES]);
    await this.pg.query('DELETE FROM send_reservations WHERE expires_at < now()');
    return { rows: rows.rows, alerts: al.rows.map((r) => r.alert) };
  }

  async claimAlert(alert: SendLimitAlert, key: string): Promise<boolean> {
    const r = await this.pg.query(
      `INSERT INTO send_alerts (key, at, alert) VALUES ($1, now(), $2)
       ON CONFLICT (key) DO UPDATE SET at = excluded.at, alert = excluded.alert
        WHERE send_alerts.at < now() - make_interval(mins => $3)
       RETURNING key`,
      [key, JSON.stringify(alert), WINDOW_MINUTES],
    );
    return (r.rowCount ?? 0) > 0;
  }
}

type Client = Parameters<Parameters<PgState['transaction']>[0]>[0];
