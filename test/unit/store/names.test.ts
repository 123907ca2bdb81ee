import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeMutf7, encodeMutf7 } from '../../../src/store/mutf7.ts';
import {
  folderDirName,
  folderFromDirName,
  maildirHostname,
  normalizeFlags,
  ownerDirName,
  parseMaildirFileName,
  specialUseOf,
} from '../../../src/store/names.ts';

test('modified UTF-7 matches RFC 3501 §5.1.3 and round-trips', () => {
  assert.equal(encodeMutf7('~peter/mail/台北/日本語'), '~peter/mail/&U,BTFw-/&ZeVnLIqe-');
  assert.equal(encodeMutf7('Entwürfe'), 'Entw&APw-rfe');
  assert.equal(encodeMutf7('R&D'), 'R&-D');
  for (const s of ['', 'plain', 'Entwürfe', 'R&D', '台北', 'emoji 📬 box', '&&', 'ü&ü']) assert.equal(decodeMutf7(encodeMutf7(s)), s);
  assert.throws(() => decodeMutf7('&APw'), SyntaxError);
  assert.throws(() => decodeMutf7('&A/w-'), SyntaxError);
});

test('folder names map to Maildir++ directories and back', () => {
  const cases: [string, string][] = [
    ['Junk', '.Junk'],
    ['Archive/2024', '.Archive.2024'],
    ['Entwürfe', '.Entw&APw-rfe'],
    ['v1.2', '.v1\\2e2'],
    ['back\\slash', '.back\\5cslash'],
    ['~tilde', '.\\7etilde'],
    ['INBOX/Sub', '.INBOX.Sub'],
  ];
  for (const [name, dir] of cases) {
    assert.equal(folderDirName(name), dir, name);
    assert.equal(folderFromDirName(dir), name, dir);
  }
  assert.equal(folderDirName('INBOX'), '');
  assert.equal(folderDirName('Inbox'), '');
  assert.equal(folderFromDirName(''), 'INBOX');
  for (const bad of ['', '/', 'a/', '/a', 'a//b', 'tab\there', 'x'.repeat(300)]) assert.throws(() => folderDirName(bad), { name: 'InvalidFolderName' }, bad);
  for (const notFolder of ['cur', '.', '..', '.a..b', '.&bad']) assert.equal(folderFromDirName(notFolder), undefined, notFolder);
});

test('special-use attributes by top-level folder name, any case', () => {
  assert.equal(specialUseOf('Junk'), '\\Junk');
  assert.equal(specialUseOf('SPAM'), '\\Junk');
  assert.equal(specialUseOf('Deleted Items'), '\\Trash');
  assert.equal(specialUseOf('Sent Messages'), '\\Sent');
  assert.equal(specialUseOf('drafts'), '\\Drafts');
  assert.equal(specialUseOf('Projects'), undefined);
});

test('owner directory names are lower-case and cannot be a path', () => {
  assert.equal(ownerDirName('Alice'), 'alice');
  assert.equal(ownerDirName('..'), '%2E.');
  assert.equal(ownerDirName('a/b'), 'a%2Fb');
  assert.equal(ownerDirName('A%2fB'), 'a%252fb');
  assert.equal(ownerDirName('Jürgen'), 'jürgen');
  assert.throws(() => ownerDirName(''), RangeError);
});

test('Maildir file names: host escaping, flags, and parsing ,S= ,W= :2,', () => {
  assert.equal(maildirHostname('mx/a:b'), 'mx\\057a\\072b');
  assert.equal(normalizeFlags('TSFS'), 'FST');
  assert.equal(normalizeFlags('aS'), 'Sa');
  assert.throws(() => normalizeFlags('S,'), RangeError);
  assert.deepEqual(parseMaildirFileName('1700000000.M1P2Q3.host,S=1234,W=1260:2,RS'), {
    base: '1700000000.M1P2Q3.host',
    size: 1234,
    virtualSize: 1260,
    flags: 'RS',
  });
  assert.deepEqual(parseMaildirFileName('1700000000.M1P2Q3.host'), { base: '1700000000.M1P2Q3.host', flags: '' });
});
