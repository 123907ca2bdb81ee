import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ACTIVE_LINK, scriptNameProblem, SieveScriptStore, SieveStorageError } from '../../../src/sieve/storage.ts';
import { MaildirStore } from '../../../src/store/maildir.ts';

async function home(t: { after(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'postern-sieve-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function refusedWith(code: string) {
  return (err: unknown) => err instanceof SieveStorageError && err.code === code;
}

test('put, get and list: scripts are sieve/NAME.sieve files, sorted by name, none active until SETACTIVE', async (t) => {
  const h = await home(t);
  const store = new SieveScriptStore();
  await store.put(h, 'work', 'keep;\r\n');
  await store.put(h, 'Ferien ü', 'discard;\r\n');
  assert.equal(await readFile(join(h, 'sieve', 'work.sieve'), 'utf8'), 'keep;\r\n');
  assert.equal(await store.get(h, 'Ferien ü'), 'discard;\r\n');
  assert.equal(await store.get(h, 'missing'), null);
  assert.deepEqual(await store.list(h), [
    { name: 'Ferien ü', active: false },
    { name: 'work', active: false },
  ]);
  assert.equal(await store.getActive(h), null);
  assert.deepEqual(await readdir(join(h, 'sieve', 'tmp')), [], 'nothing left behind in tmp/');
  await store.put(h, 'work', 'stop;\r\n');
  assert.equal(await store.get(h, 'work'), 'stop;\r\n', 'put replaces');
});

test('setActive makes .dovecot.sieve a relative link to sieve/NAME.sieve, as Pigeonhole does; null removes it', async (t) => {
  const h = await home(t);
  const store = new SieveScriptStore();
  await store.put(h, 'a', 'keep;');
  await store.put(h, 'b', 'discard;');
  await store.setActive(h, 'a');
  assert.equal(await readlink(join(h, ACTIVE_LINK)), 'sieve/a.sieve');
  assert.deepEqual(await store.getActive(h), { name: 'a', text: 'keep;' });
  await store.setActive(h, 'b');
  assert.equal(await readlink(join(h, ACTIVE_LINK)), 'sieve/b.sieve');
  assert.deepEqual(await store.list(h), [
    { name: 'a', active: false },
    { name: 'b', active: true },
  ]);
  await assert.rejects(store.setActive(h, 'nope'), refusedWith('NONEXISTENT'));
  assert.equal(await readlink(join(h, ACTIVE_LINK)), 'sieve/b.sieve', 'a refused SETACTIVE changes nothing');
  await store.setActive(h, null);
  await assert.rejects(lstat(join(h, ACTIVE_LINK)), { code: 'ENOENT' });
  assert.equal(await store.getActive(h), null);
  await store.setActive(h, null); // deactivating with nothing active is fine (RFC 5804 §2.8)
  assert.deepEqual((await readdir(h)).sort(), ['sieve'], 'no temporary link left in the home');
});

test('delete: the active script is refused with ACTIVE, an unknown one with NONEXISTENT', async (t) => {
  const h = await home(t);
  const store = new SieveScriptStore();
  await store.put(h, 'a', 'keep;');
  await store.put(h, 'b', 'keep;');
  await writeFile(join(h, 'sieve', 'b.svbin'), 'compiled');
  await store.setActive(h, 'a');
  await assert.rejects(store.delete(h, 'a'), refusedWith('ACTIVE'));
  await assert.rejects(store.delete(h, 'zzz'), refusedWith('NONEXISTENT'));
  await store.delete(h, 'b');
  assert.deepEqual(await store.list(h), [{ name: 'a', active: true }]);
  assert.deepEqual((await readdir(join(h, 'sieve'))).sort(), ['a.sieve', 'tmp'], "Pigeonhole's compiled copy goes too");
});

test('rename: the active script stays active under its new name; taken and unknown names are refused', async (t) => {
  const h = await home(t);
  const store = new SieveScriptStore();
  await store.put(h, 'a', 'keep;');
  await store.put(h, 'b', 'discard;');
  await store.setActive(h, 'a');
  await assert.rejects(store.rename(h, 'a', 'b'), refusedWith('ALREADYEXISTS'));
  await assert.rejects(store.rename(h, 'x', 'y'), refusedWith('NONEXISTENT'));
  await store.rename(h, 'a', 'main');
  assert.equal(await readlink(join(h, ACTIVE_LINK)), 'sieve/main.sieve');
  assert.deepEqual(await store.list(h), [
    { name: 'b', active: false },
    { name: 'main', active: true },
  ]);
  assert.deepEqual(await store.getActive(h), { name: 'main', text: 'keep;' });
  await store.rename(h, 'b', 'c');
  assert.equal(await store.get(h, 'b'), null);
  assert.equal(await store.get(h, 'c'), 'discard;');
});

test('quota: number of scripts, size of one script, total bytes; replacing a script counts its new size only', async (t) => {
  const h = await home(t);
  const store = new SieveScriptStore({ quota: { maxScripts: 2, maxScriptBytes: 10, maxStorageBytes: 15 } });
  await assert.rejects(store.put(h, 'big', 'x'.repeat(11)), refusedWith('QUOTA/MAXSIZE'));
  await store.put(h, 'a', 'x'.repeat(10));
  await assert.rejects(store.put(h, 'b', 'x'.repeat(6)), refusedWith('QUOTA'), '10 + 6 > 15');
  await store.put(h, 'b', 'x'.repeat(5));
  await assert.rejects(store.put(h, 'c', 'x'), refusedWith('QUOTA/MAXSCRIPTS'));
  await store.put(h, 'a', 'x'.repeat(9)); // replaces: still 2 scripts, 14 bytes
  assert.deepEqual(await store.usage(h), { scripts: 2, bytes: 14 });
  await store.checkSpace(h, 'a', 10);
  await assert.rejects(store.checkSpace(h, 'c', 1), refusedWith('QUOTA/MAXSCRIPTS'));
  await assert.rejects(store.checkSpace(h, 'a', 11), refusedWith('QUOTA/MAXSIZE'));
  // Multi-byte UTF-8 counts in octets, as HAVESPACE and the literal sizes do.
  await assert.rejects(store.put(h, 'a', 'ü'.repeat(6)), refusedWith('QUOTA/MAXSIZE'));
  const unlimited = new SieveScriptStore({ quota: { maxScripts: 0, maxScriptBytes: 0, maxStorageBytes: 0 } });
  for (let i = 0; i < 5; i++) await unlimited.put(h, `n${i}`, 'x'.repeat(100));
  assert.equal((await unlimited.usage(h)).scripts, 7);
});

test('parallel puts cannot together pass the script limit', async (t) => {
  const h = await home(t);
  const store = new SieveScriptStore({ quota: { maxScripts: 3 } });
  const results = await Promise.allSettled(Array.from({ length: 6 }, (_, i) => store.put(h, `s${i}`, 'keep;')));
  assert.equal(results.filter((r) => r.status === 'fulfilled').length, 3);
  assert.equal((await store.list(h)).length, 3);
});

test('script names follow RFC 5804 §1.6: no control characters, NFC, no "/", not empty', async (t) => {
  const h = await home(t);
  const store = new SieveScriptStore();
  for (const bad of ['', 'a/b', 'tab\there', 'nul\0', 'del\x7f', 'c1\u0085', 'ls\u2028', 'e\u0301', 'x'.repeat(201), '\ud800']) {
    assert.ok(scriptNameProblem(bad), `${JSON.stringify(bad)} refused`);
    await assert.rejects(store.put(h, bad, 'keep;'), refusedWith('BADNAME'));
  }
  for (const good of ['roundcube', 'Out of office', '\u00e9t\u00e9', 'a.b', 'x'.repeat(200), '..']) assert.equal(scriptNameProblem(good), null, good);
  await store.put(h, '..', 'keep;');
  assert.equal(await readFile(join(h, 'sieve', '...sieve'), 'utf8'), 'keep;', "'..' is only a name: it stays inside sieve/");
});

test('reads the layout NethServer leaves: sieve/roundcube.sieve active through .dovecot.sieve, with a .svbin beside it', async (t) => {
  const h = await home(t);
  await mkdir(join(h, 'sieve', 'tmp'), { recursive: true });
  await mkdir(join(h, 'Maildir', 'cur'), { recursive: true });
  const script = 'require ["fileinto"];\n# rule:[spam]\nif header :contains "X-Spam-Flag" "YES" { fileinto "Junk"; }\n';
  await writeFile(join(h, 'sieve', 'roundcube.sieve'), script);
  await writeFile(join(h, 'sieve', 'roundcube.svbin'), Buffer.from([0xa1, 0x00, 0xff]));
  await writeFile(join(h, 'sieve', 'notes.txt'), 'not a script');
  await symlink('sieve/roundcube.sieve', join(h, ACTIVE_LINK));
  const store = new SieveScriptStore();
  assert.deepEqual(await store.list(h), [{ name: 'roundcube', active: true }]);
  assert.deepEqual(await store.getActive(h), { name: 'roundcube', text: script });
  await assert.rejects(store.delete(h, 'roundcube'), refusedWith('ACTIVE'));
});

test('an absolute link made on the old server names the script of the same name here; a link elsewhere is not active', async (t) => {
  const h = await home(t);
  const store = new SieveScriptStore();
  await store.put(h, 'roundcube', 'keep;');
  await symlink('/var/lib/nethserver/vmail/john/sieve/roundcube.sieve', join(h, ACTIVE_LINK));
  assert.deepEqual(await store.list(h), [{ name: 'roundcube', active: true }]);
  assert.deepEqual(await store.getActive(h), { name: 'roundcube', text: 'keep;' });
  await rm(join(h, ACTIVE_LINK));
  await symlink('/etc/passwd', join(h, ACTIVE_LINK));
  assert.deepEqual(await store.list(h), [{ name: 'roundcube', active: false }]);
  assert.equal(await store.getActive(h), null, 'nothing outside the storage is read through the link');
  await rm(join(h, ACTIVE_LINK));
  await symlink('sieve/gone.sieve', join(h, ACTIVE_LINK));
  assert.equal(await store.getActive(h), null, 'a dangling link is no active script');
});

test('a regular-file .dovecot.sieve stays the active script until SETACTIVE, which keeps it as "dovecot.orig"', async (t) => {
  const h = await home(t);
  const store = new SieveScriptStore();
  await writeFile(join(h, ACTIVE_LINK), 'discard;\n');
  assert.deepEqual(await store.getActive(h), { name: null, text: 'discard;\n' }, 'delivery still runs it');
  assert.deepEqual(await store.list(h), [], 'it has no name in the storage');
  await store.put(h, 'new', 'keep;');
  await store.setActive(h, 'new');
  assert.equal(await readlink(join(h, ACTIVE_LINK)), 'sieve/new.sieve');
  assert.equal(await store.get(h, 'dovecot.orig'), 'discard;\n');
  assert.deepEqual(await store.list(h), [
    { name: 'dovecot.orig', active: false },
    { name: 'new', active: true },
  ]);
  // A second one, once dovecot.orig is taken, gets another name; deactivating also keeps it.
  await rm(join(h, ACTIVE_LINK));
  await writeFile(join(h, ACTIVE_LINK), 'stop;\n');
  await store.setActive(h, null);
  await assert.rejects(lstat(join(h, ACTIVE_LINK)), { code: 'ENOENT' });
  assert.equal(await store.get(h, 'dovecot.orig-2'), 'stop;\n');
});

test('a mailbox with no home yet has no scripts; the first put makes sieve/', async (t) => {
  const h = join(await home(t), 'users', 'new-hire');
  const store = new SieveScriptStore();
  assert.deepEqual(await store.list(h), []);
  assert.equal(await store.getActive(h), null);
  assert.deepEqual(await store.usage(h), { scripts: 0, bytes: 0 });
  await store.put(h, 'first', 'keep;');
  await store.setActive(h, 'first');
  assert.deepEqual(await store.getActive(h), { name: 'first', text: 'keep;' });
});

test("MaildirStore.homePath is the directory holding the owner's Maildir/", async (t) => {
  const root = await home(t);
  const byLogin = new MaildirStore({ root, hostname: 'mx.test' });
  assert.equal(byLogin.homePath({ kind: 'user', login: 'John' }), join(root, 'users', 'john'));
  const located = new MaildirStore({ root, hostname: 'mx.test', locate: () => 'users/3f2a-guid' });
  assert.equal(located.homePath({ kind: 'user', login: 'john', guid: 'g' }), join(root, 'users', '3f2a-guid'));
  assert.equal(located.maildirPath({ kind: 'user', login: 'john', guid: 'g' }), join(located.homePath({ kind: 'user', login: 'john', guid: 'g' }), 'Maildir'));
});
