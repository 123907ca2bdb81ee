/**
 * imap.workers: processes that open one folder's index for the first time at the same moment all end up on one
 * index (link(2) into place, folder-index.ts create): the same UIDVALIDITY everywhere, and no process removes
 * another's freshly made file.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import { spawnChild } from '../../harness/children.ts';
import { ROOT } from '../../helpers/cli.ts';

const OPENER = `
import { FolderIndex } from ${JSON.stringify(join(ROOT, 'src/store/folder-index.ts'))};
const [dir, at] = process.argv.slice(-2);
// All start together: spin until the agreed moment, then open.
while (Date.now() < Number(at));
const idx = FolderIndex.open(dir);
idx.apply({ add: [{ base: 'm' + process.pid, name: 'm' + process.pid + ':2,', size: 1, internalDate: 0, keywords: '' }] });
process.stdout.write(String(idx.uidValidity));
idx.close();
`;

it('several processes creating one folder index at once share one index', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'postern-idx-race-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  for (let round = 0; round < 3; round++) {
    const folder = join(dir, `f${round}`);
    await import('node:fs/promises').then((fs) => fs.mkdir(folder));
    const at = Date.now() + 3000;
    const children = [0, 1, 2].map(() => {
      const c = spawnChild(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', OPENER, folder, String(at)], { owner: t, cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      c.process.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      c.process.stderr!.on('data', (d: Buffer) => (err += d.toString()));
      return c.exited.then((e) => ({ ...e, out, err }));
    });
    const results = await Promise.all(children);
    for (const r of results) assert.equal(r.code, 0, r.err);
    assert.equal(new Set(results.map((r) => r.out)).size, 1, `one UIDVALIDITY: ${results.map((r) => r.out).join(', ')}`);
    const { FolderIndex } = await import('../../../src/store/folder-index.ts');
    const idx = FolderIndex.open(folder);
    assert.equal(String(idx.uidValidity), results[0]!.out);
    // Every process's row is in the one index, each with its own UID.
    assert.equal(new Set(idx.rows().map((r) => r.uid)).size, 3);
    idx.close();
    assert.deepEqual((await readdir(folder)).filter((f) => f.endsWith('.tmp')), []);
  }
});
