/**
 * bin/postern.js runs dist/ (src/ compiled by scripts/build.mjs) only while it was built from the sources as they
 * are: these drive distIsCurrent on a real directory tree with real mtimes.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, beforeEach, test } from 'node:test';
import { BUILT_STAMP, distIsCurrent } from '../../../bin/dist-current.js';

const root = mkdtempSync(join(tmpdir(), 'postern-dist-current-'));
after(() => rmSync(root, { recursive: true, force: true }));

const HOUR = 3600_000;
/** A build that began an hour ago; every source older than that. */
const built = Date.now() - HOUR;
const old = new Date(built - HOUR);

function age(path: string, when: Date = old): void {
  utimesSync(path, when, when);
}

beforeEach(() => {
  rmSync(join(root, 'src'), { recursive: true, force: true });
  rmSync(join(root, 'dist'), { recursive: true, force: true });
  mkdirSync(join(root, 'src', 'imap'), { recursive: true });
  mkdirSync(join(root, 'dist'), { recursive: true });
  writeFileSync(join(root, 'src', 'main.ts'), 'export {};\n');
  writeFileSync(join(root, 'src', 'imap', 'server.ts'), 'export {};\n');
  writeFileSync(join(root, 'dist', BUILT_STAMP), `${built}\n`);
  for (const p of ['src/imap/server.ts', 'src/main.ts', 'src/imap', 'src']) age(join(root, p));
});

test('a build that began after every source change is used', () => {
  assert.equal(distIsCurrent(root), true);
});

test('a source saved after the build began (even during it) makes the sources win', () => {
  age(join(root, 'src', 'imap', 'server.ts'), new Date(built + 1));
  assert.equal(distIsCurrent(root), false);
});

test('a source added or removed (the directory changed) makes the sources win', () => {
  writeFileSync(join(root, 'src', 'imap', 'new.ts'), 'export {};\n');
  age(join(root, 'src', 'imap', 'new.ts'));
  assert.equal(distIsCurrent(root), false, 'added: the directory mtime moved');
  unlinkSync(join(root, 'src', 'imap', 'new.ts'));
  age(join(root, 'src', 'imap'));
  assert.equal(distIsCurrent(root), true);
  unlinkSync(join(root, 'src', 'imap', 'server.ts'));
  assert.equal(distIsCurrent(root), false, 'removed: the directory mtime moved');
});

test('no stamp (never built, or tsc failed) or an unreadable one: the sources', () => {
  unlinkSync(join(root, 'dist', BUILT_STAMP));
  assert.equal(distIsCurrent(root), false);
  writeFileSync(join(root, 'dist', BUILT_STAMP), 'garbage\n');
  assert.equal(distIsCurrent(root), false);
});

test('no src/ at all: the sources (which then fail loudly), never a guess', () => {
  rmSync(join(root, 'src'), { recursive: true });
  assert.equal(distIsCurrent(root), false);
});
