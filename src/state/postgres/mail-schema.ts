/**
 * The tables of the mail side of the cluster state (POP3 maildrop locks): schema/postgres/pgidx-001-mail.sql,
 * written to be applied by every node at every start (IF NOT EXISTS).
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { PACKAGE_ROOT } from '../../config/load.js';
import type { Queryable } from './queryable.js';

export const MAIL_SCHEMA_FILE = resolve(PACKAGE_ROOT, 'schema', 'postgres', 'pgidx-001-mail.sql');

export async function applyMailSchema(db: Queryable): Promise<void> {
  await db.query(readFileSync(MAIL_SCHEMA_FILE, 'utf8'));
}
