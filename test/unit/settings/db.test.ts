import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, writeFileSync, mkdirSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { listMigrations, MIGRATIONS_DIR, migrate, openDatabase, openSettingsDatabase } from '../../../src/settings/db.ts';

function tempDir(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'postern-db-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('the package migrations are found from any working directory and numbered without gaps', () => {
  const migrations = listMigrations();
  assert.ok(MIGRATIONS_DIR.endsWith(join('schema', 'migrations')));
  assert.ok(migrations.length >= 1);
  migrations.forEach((m, i) => assert.equal(m.version, i + 1, `${m.file} should be number ${i + 1}`));
});

test('opening creates dataDir (0700) and settings.db (0600), in WAL mode with foreign keys on', (t) => {
  const dir = join(tempDir(t), 'nested', 'data');
  const db = openSettingsDatabase(dir);
  try {
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    assert.equal(statSync(join(dir, 'settings.db')).mode & 0o777, 0o600);
    assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
    assert.equal(db.pragma('foreign_keys', { simple: true }), 1);
    const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").pluck().all();
    for (const name of ['domains', 'pseudonyms', 'schema_migrations', 'settings', 'users']) assert.ok(tables.includes(name), name);
    assert.equal(db.pragma('user_version', { simple: true }), listMigrations().at(-1)!.version);
  } finally {
    db.close();
  }
});

test('migrations are idempotent: reopening applies nothing and keeps the data', (t) => {
  const dir = tempDir(t);
  const db1 = openSettingsDatabase(dir);
  db1.prepare("INSERT INTO settings (key, value, updated_at) VALUES ('mailbox.imap', 'false', 'now')").run();
  db1.close();
  const db2 = openSettingsDatabase(dir);
  try {
    assert.deepEqual(migrate(db2), []);
    assert.equal(db2.prepare("SELECT value FROM settings WHERE key = 'mailbox.imap'").pluck().get(), 'false');
    const versions = db2.prepare('SELECT version FROM schema_migrations').pluck().all();
    assert.deepEqual(versions, listMigrations().map((m) => m.version));
  } finally {
    db2.close();
  }
});

test('migrations run in order, each in a transaction: a failing one leaves the previous version', (t) => {
  const dir = tempDir(t);
  const migrations = join(dir, 'migrations');
  mkdirSync(migrations);
  writeFileSync(join(migrations, '002-second.sql'), 'CREATE TABLE b (x REFERENCES a(x));');
  writeFileSync(join(migrations, '001-first.sql'), 'CREATE TABLE a (x INTEGER PRIMARY KEY);');
  writeFileSync(join(migrations, 'README.md'), 'not a migration');
  const db = openDatabase(join(dir, 'x.db'), { migrationsDir: migrations });
  assert.equal(db.pragma('user_version', { simple: true }), 2);
  db.close();

  writeFileSync(join(migrations, '003-broken.sql'), 'CREATE TABLE c (y); THIS IS NOT SQL;');
  assert.throws(() => openDatabase(join(dir, 'x.db'), { migrationsDir: migrations }), /migration .*003-broken\.sql failed/);
  rmSync(join(migrations, '003-broken.sql'));
  const again = openDatabase(join(dir, 'x.db'), { migrationsDir: migrations });
  try {
    // The broken migration's first statement was rolled back with it.
    assert.equal(again.prepare("SELECT count(*) FROM sqlite_master WHERE name = 'c'").pluck().get(), 0);
    assert.equal(again.pragma('user_version', { simple: true }), 2);
  } finally {
    again.close();
  }
});

test('a database written by a newer version (unknown migration) is refused', (t) => {
  const dir = tempDir(t);
  const migrations = join(dir, 'migrations');
  mkdirSync(migrations);
  writeFileSync(join(migrations, '001-first.sql'), 'CREATE TABLE a (x);');
  writeFileSync(join(migrations, '002-second.sql'), 'CREATE TABLE b (x);');
  openDatabase(join(dir, 'x.db'), { migrationsDir: migrations }).close();
  rmSync(join(migrations, '002-second.sql'));
  assert.throws(() => openDatabase(join(dir, 'x.db'), { migrationsDir: migrations }), /migration 002 .*newer version/);
});

test('two migration files with one number are refused', (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, '001-a.sql'), '');
  writeFileSync(join(dir, '001-b.sql'), '');
  assert.throws(() => listMigrations(dir), /two migrations numbered 001/);
  assert.ok(existsSync(join(dir, '001-a.sql')));
});
