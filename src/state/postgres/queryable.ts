/** What the index, event and lock code needs of a PostgreSQL connection pool (pg.Pool has it). */
export interface Queryable {
  query(text: string, values?: unknown[]): Promise<{ rows: unknown[]; rowCount?: number | null }>;
}
