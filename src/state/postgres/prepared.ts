/**
 * Hot statements, prepared once per connection (pg's named statements): without a name every query is parsed,
 * analysed and planned again by PostgreSQL. `prepared(sql)` registers a statement's text and returns it unchanged;
 * PgState.query runs a registered text under its name. Only static texts (a bounded set): each name is a server-side
 * statement on every pooled connection.
 */
const PREPARED = new Map<string, string>();
export function prepared(sql: string): string {
  if (!PREPARED.has(sql)) PREPARED.set(sql, `postern_${PREPARED.size + 1}`);
  return sql;
}

/** The name `sql` is prepared under, when it is a registered hot statement. */
export function preparedName(sql: string): string | undefined {
  return PREPARED.get(sql);
}
