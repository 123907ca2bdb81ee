import type pg from 'pg';

/** What the index, event and lock code needs of the state store's pool (PgState, src/state/postgres/pool.ts). */
export interface Queryable {
  query(text: string, values?: unknown[]): Promise<{ rows: unknown[]; rowCount?: number | null }>;
}

/** Queryable with transactions on one connection (PgState.transaction: BEGIN … COMMIT, ROLLBACK on a throw). */
export interface TxQueryable extends Queryable {
  transaction<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T>;
}
