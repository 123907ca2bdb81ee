/**
 * The tables of the mail side of the cluster state (folder index, POP3 maildrop locks):
 * schema/postgres/pgidx-001-mail.sql, written to be applied by every node at every start (IF NOT EXISTS).
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type pg from 'pg';
import { PACKAGE_ROOT } from '../../config/load.js';

export const MAIL_SCHEMA_FILE = resolve(PACKAGE_ROOT, 'schema', 'postgres', 'pgidx-001-mail.sql');

export async function applyMailSchema(pool: pg.Pool): Promise<void> {
  const c = await pool.connect();
  try {
    // Two nodes starting at once: CREATE TABLE IF NOT EXISTS races on the catalog without a lock around it.
    await c.query('BEGIN');
    await c.query("SELECT pg_advisory_xact_lock(hashtext('postern:mail-schema'))");
    await c.query(readFileSync(MAIL_SCHEMA_FILE, 'utf8'));
    await c.query('COMMIT');
  } catch (err) {
    await c.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    c.release();
  }
}
