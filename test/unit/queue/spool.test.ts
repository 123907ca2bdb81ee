import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TempFailure } from '../../../src/lib/errors.ts';
import { InvalidQueueIdError, isQueueId, newQueueId, parseQueueId, queueIdTime } from '../../../src/queue/id.ts';
import { createFilePooled, fsyncDirPooled, HeldDir, renamePooled, type PendingFile } from '../../../src/lib/durable-fs.ts';
import { NotQueuedError, Spool } from '../../../src/queue/spool.ts';
import { waitFor } from '../../helpers/wait.ts';
import { envelope, message, queueFiles, tempDir, tempSpool } from './helpers.ts';

function noSpace(path: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${path}: no space left on device`), { code: 'ENOSPC' });
}

test('queue ids are short, unique, sorted by time and safe as file names', () => {
  const ids = Array.from({ length: 50_000 }, () => newQueueId());
  assert.equal(new Set(ids).size, ids.length);
  assert.deepEqual([...ids].sort(), ids, 'ids made in order sort in order');
  for (const id of ids.slice(0, 100)) assert.match(id, /^[0-9A-Z]{16}$/);
  const t = Date.now();
  assert.ok(Math.abs(queueIdTime(newQueueId(t)).getTime() - t) <= 1);
  assert.ok(newQueueId(Date.parse('2020-01-01')) > ids[0], 'a clock stepping back does not break the order');
});

test('queue ids from outside are validated: any case is accepted, anything else refused', () => {
  const id = newQueueId();
  assert.equal(parseQueueId(` ${id.toLowerCase()} `), id);
  for (const bad of ['', '../../etc/passwd', id + 'X', id.slice(1), id.replace(/.$/, 'I'), 'a/b', `${id}.json`]) {
    assert.throws(() => parseQueueId(bad), InvalidQueueIdError, bad);
    assert.equal(isQueueId(bad), false);
  }
});

test('enqueue writes the message and its envelope; the message bytes are exact', async (t) => {
  const { spool } = await tempSpool(t);
  // Every byte value, bare CR/LF included: the spool stores, it does not edit (the SMTP layer normalises).
  const bytes = Buffer.concat([message(), Buffer.from(Array.from({ length: 256 }, (_, i) => i))]);
  const before = Date.now();
  const id = await spool.enqueue(bytes, envelope('alice@corp.example', 'bob@partner.example', 'carol@corp.example'));
  assert.ok(isQueueId(id));
  assert.deepEqual(readFileSync(join(spool.dir, `${id}.eml`)), bytes);
  assert.deepEqual(await spool.readMessage(id), bytes);
  const onDisk = JSON.parse(readFileSync(join(spool.dir, `${id}.json`), 'utf8'));
  const e = await spool.read(id);
  assert.deepEqual(e, onDisk);
  assert.equal(e!.id, id);
  assert.equal(e!.size, bytes.length);
  assert.equal(e!.attempts, 0);
  assert.equal(e!.from, 'alice@corp.example');
  assert.deepEqual(e!.recipients.map((r) => [r.address, r.state]), [
    ['bob@partner.example', 'pending'],
    ['carol@corp.example', 'pending'],
  ]);
  assert.ok(Date.parse(e!.receivedAt) >= before - 1 && Date.parse(e!.receivedAt) <= Date.now());
  assert.equal(e!.nextAttemptAt, e!.receivedAt, 'a new message is due at once');
  assert.deepEqual(readdirSync(spool.tmpDir), [], 'nothing is left in tmp/');
  assert.equal(spool.messagePath(id), join(spool.dir, `${id}.eml`));
  assert.deepEqual((await spool.list()).map((x) => x.id), [id]);
  assert.equal(spool.stats.enqueued, 1);
  assert.equal(spool.stats.dirSyncs, 1);
});

test('enqueue keeps an id given by the caller (known before the commit, for Received)', async (t) => {
  const { spool } = await tempSpool(t);
  const id = newQueueId();
  assert.equal(await spool.enqueue(message(), { ...envelope('a@corp.example', 'b@corp.example'), id }), id);
  await assert.rejects(spool.enqueue(message(), { ...envelope('a@corp.example', 'b@corp.example'), id: '../evil' }), InvalidQueueIdError);
  await assert.rejects(spool.enqueue(message(), envelope('a@corp.example')), /needs recipients/);
});

test('200 concurrent enqueues all commit with unique ids and share directory fsyncs (group commit)', async (t) => {
  const { spool } = await tempSpool(t);
  const bodies = Array.from({ length: 200 }, (_, i) => message(`message ${i}`));
  const ids = await Promise.all(bodies.map((b, i) => spool.enqueue(b, envelope('alice@corp.example', `u${i}@corp.example`))));
  assert.equal(new Set(ids).size, 200);
  const listed = await spool.list();
  assert.equal(listed.length, 200);
  for (let i = 0; i < 200; i++) assert.deepEqual(await spool.readMessage(ids[i]), bodies[i]);
  const { dirSyncs, dirSyncRequests, enqueued } = spool.stats;
  assert.equal(enqueued, 200);
  assert.equal(dirSyncRequests, 200);
  assert.ok(dirSyncs < 200, `expected fewer directory fsyncs than enqueues, got ${dirSyncs}`);
  t.diagnostic(`200 concurrent enqueues: ${dirSyncs} directory fsyncs`);
});

/** A SpoolFs.create that really writes, and whose fsync waits for `gate` and logs to `order`. */
function gatedCreate(order: string[], gate: Promise<void>) {
  return async (path: string, data: Buffer): Promise<PendingFile> => {
    const file = await createFilePooled(path, data);
    const kind = path.endsWith('.eml') ? 'eml' : 'json';
    order.push(`create ${kind}`);
    return {
      async syncAndClose() {
        await gate;
        await file.syncAndClose();
        order.push(`fsync ${kind}`);
      },
      close: () => file.close(),
    };
  };
}

test('a message is acknowledged only after its two files and the directory (after the rename) are fsynced', async (t) => {
  const order: string[] = [];
  let open!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  const { spool } = await tempSpool(t, {
    fs: {
      create: gatedCreate(order, gate),
      rename: async (a, b) => {
        await renamePooled(a, b);
        order.push(`rename ${b.endsWith('.eml') ? 'eml' : 'json'}`);
      },
      syncDir: async (p) => {
        order.push('syncDir start');
        await fsyncDirPooled(p);
        order.push('syncDir done');
      },
    },
  });
  let resolved = false;
  const done = spool.enqueue(message(), envelope('a@corp.example', 'b@corp.example')).then(() => {
    resolved = true;
    order.push('resolved');
  });
  // The directory fsync is made while the files' fsyncs are held: the answer must still wait for them.
  await waitFor('the directory fsync', () => order.includes('syncDir done'), { timeoutMs: 60_000 });
  assert.equal(resolved, false, 'not acknowledged while the files are not fsynced');
  open();
  await done;
  assert.deepEqual(order.slice(0, 2).sort(), ['create eml', 'create json'], 'both files are written at once');
  assert.equal(order[2], 'rename json', 'the message is created in queue/ directly: only the envelope is renamed');
  assert.equal(order[3], 'syncDir start', 'the directory fsync starts after the rename');
  assert.deepEqual(order.slice(-3, -1).sort(), ['fsync eml', 'fsync json']);
  assert.equal(order.at(-1), 'resolved');
});

test('a disk that fails (ENOSPC, EIO) rejects with TempFailure and leaves no half message', async (t) => {
  for (const failing of ['create-eml', 'create-json', 'rename-json', 'fsync-eml', 'fsync-json', 'syncDir'] as const) {
    const { spool } = await tempSpool(t, {
      fs: {
        async create(path, data) {
          const kind = path.endsWith('.eml') ? 'eml' : 'json';
          const file = await createFilePooled(path, data); // the partial file exists when the failure hits
          if (failing === `create-${kind}`) {
            await file.close();
            throw noSpace(path);
          }
          return {
            async syncAndClose() {
              await file.close();
              if (failing === `fsync-${kind}`) throw Object.assign(new Error('input/output error'), { code: 'EIO' });
            },
            close: () => file.close(),
          };
        },
        async rename(a, b) {
          if (failing === 'rename-json' && b.endsWith('.json')) throw Object.assign(new Error('EIO'), { code: 'EIO' });
          await renamePooled(a, b);
        },
        async syncDir() {
          if (failing === 'syncDir') throw Object.assign(new Error('input/output error'), { code: 'EIO' });
        },
      },
    });
    await assert.rejects(spool.enqueue(message(), envelope('a@corp.example', 'b@corp.example')), (err: unknown) => {
      assert.ok(err instanceof TempFailure, `${failing}: ${String(err)}`);
      if (failing.startsWith('create')) assert.match(err.message, /file system is full/);
      return true;
    });
    assert.deepEqual(readdirSync(spool.dir).filter((n) => n !== 'tmp'), [], `${failing}: nothing in the queue`);
    assert.deepEqual(readdirSync(spool.tmpDir), [], `${failing}: nothing in tmp/`);
    assert.deepEqual(await spool.list(), []);
  }
});

test('recover drops what a crash can leave of an unanswered commit: a torn envelope, a short message file', async (t) => {
  const dir = tempDir(t);
  const spool = new Spool(dir, { prefixFor: (e) => (e.recipients.length === 1 ? `Delivered-To: ${e.recipients[0].address}\r\n` : undefined) });
  await spool.init();
  const single = await spool.enqueue(message('one recipient'), envelope('a@corp.example', 'b@corp.example'));
  const multi = await spool.enqueue(message('two recipients'), envelope('a@corp.example', 'b@corp.example', 'c@corp.example'));
  const updated = await spool.enqueue(message('updated'), envelope('a@corp.example', 'b@corp.example'));
  await spool.modify(updated, (e) => (e.attempts = 3));
  // What the disk may hold after a crash between the renames and the fsyncs (the names durable, not the data).
  const empty = await spool.enqueue(message('envelope never written'), envelope('a@corp.example', 'b@corp.example'));
  writeFileSync(join(spool.dir, `${empty}.json`), '');
  const half = await spool.enqueue(message('envelope half written'), envelope('a@corp.example', 'b@corp.example'));
  const text = readFileSync(join(spool.dir, `${half}.json`), 'utf8');
  writeFileSync(join(spool.dir, `${half}.json`), text.slice(0, text.length >> 1));
  const short = await spool.enqueue(message('message cut short', 'x'.repeat(5000)), envelope('a@corp.example', 'b@corp.example'));
  const body = readFileSync(join(spool.dir, `${short}.eml`));
  writeFileSync(join(spool.dir, `${short}.eml`), body.subarray(0, 4096));
  const zero = await spool.enqueue(message('message never written'), envelope('a@corp.example', 'b@corp.example'));
  writeFileSync(join(spool.dir, `${zero}.eml`), '');

  const again = new Spool(dir);
  const r = await again.recover();
  assert.equal(r.messages, 3);
  assert.deepEqual(r.removedOrphans.sort(), [empty, half, short, zero].sort());
  assert.deepEqual((await again.list()).map((e) => e.id), [single, multi, updated].sort());
  assert.equal((await again.read(updated))!.attempts, 3);
  for (const id of [empty, half, short, zero]) {
    assert.equal(existsSync(join(again.dir, `${id}.eml`)), false, `${id}.eml removed`);
    assert.equal(existsSync(join(again.dir, `${id}.json`)), false, `${id}.json removed`);
  }
  assert.deepEqual((await again.readMessage(single, (await again.read(single))!.spoolPrefix)), message('one recipient'));
});

test('recover drops a message whose file a crash left at its full length but zero-filled or torn (its digest does not match)', async (t) => {
  const dir = tempDir(t);
  const spool = new Spool(dir, { prefixFor: (e) => (e.recipients.length === 1 ? `Delivered-To: ${e.recipients[0].address}\r\n` : undefined) });
  await spool.init();
  const kept = await spool.enqueue(message('kept', 'y'.repeat(3000)), envelope('a@corp.example', 'b@corp.example'));
  const keptMulti = await spool.enqueue(message('kept, two recipients'), envelope('a@corp.example', 'b@corp.example', 'c@corp.example'));
  // ext4 without a journal or with data=writeback: the inode's size reached the disk, its blocks did not.
  const zeroed = await spool.enqueue(message('zero-filled', 'x'.repeat(5000)), envelope('a@corp.example', 'b@corp.example'));
  const zeroedPath = join(spool.dir, `${zeroed}.eml`);
  writeFileSync(zeroedPath, Buffer.alloc(readFileSync(zeroedPath).length));
  // Only the last block lost: the first 4 KiB are there, the tail is zeros, the length is right.
  const tail = await spool.enqueue(message('torn tail', 'z'.repeat(6000)), envelope('a@corp.example', 'b@corp.example', 'c@corp.example'));
  const tailPath = join(spool.dir, `${tail}.eml`);
  const bytes = readFileSync(tailPath);
  writeFileSync(tailPath, Buffer.concat([bytes.subarray(0, 4096), Buffer.alloc(bytes.length - 4096)]));
  // One byte changed, same length.
  const flipped = await spool.enqueue(message('one byte'), envelope('a@corp.example', 'b@corp.example'));
  const flippedPath = join(spool.dir, `${flipped}.eml`);
  const f = readFileSync(flippedPath);
  f[f.length - 3] ^= 0x20;
  writeFileSync(flippedPath, f);
  for (const id of [zeroed, tail, flipped]) {
    const e = JSON.parse(readFileSync(join(spool.dir, `${id}.json`), 'utf8'));
    assert.equal(readFileSync(join(spool.dir, `${id}.eml`)).length, e.size + (e.spoolPrefix ? Buffer.byteLength(e.spoolPrefix) : 0), `${id}: the length alone says nothing is wrong`);
  }

  const again = new Spool(dir);
  const r = await again.recover();
  assert.equal(r.messages, 2);
  assert.deepEqual(r.removedOrphans.sort(), [zeroed, tail, flipped].sort());
  assert.deepEqual((await again.list()).map((e) => e.id), [kept, keptMulti].sort());
  for (const id of [zeroed, tail, flipped]) {
    assert.equal(existsSync(join(again.dir, `${id}.eml`)), false, `${id}.eml removed`);
    assert.equal(existsSync(join(again.dir, `${id}.json`)), false, `${id}.json removed`);
  }
  assert.deepEqual(await again.readMessage(kept, (await again.read(kept))!.spoolPrefix), message('kept', 'y'.repeat(3000)));
  assert.match((await again.read(kept))!.sha1 ?? '', /^[0-9a-f]{40}$/);
});

test('a queue written by the older protocol (files fsynced in tmp/, then renamed) is recovered and read as it is', async (t) => {
  const dir = tempDir(t);
  const spool = new Spool(dir);
  await spool.init();
  // Exactly what the older enqueue left: <id>.eml and <id>.json, the envelope as it wrote it.
  const ids: string[] = [];
  for (const [i, prefix] of [[0, 'Return-Path: <a@corp.example>\r\nDelivered-To: b@corp.example\r\n'], [1, undefined]] as const) {
    const id = newQueueId();
    const body = message(`old ${i}`);
    const at = new Date().toISOString();
    const e = { ...envelope('a@corp.example', 'b@corp.example'), id, receivedAt: at, size: body.length, attempts: 0, nextAttemptAt: at, ...(prefix ? { spoolPrefix: prefix } : {}) };
    writeFileSync(join(spool.tmpDir, `${id}.eml`), prefix ? Buffer.concat([Buffer.from(prefix), body]) : body);
    writeFileSync(join(spool.tmpDir, `${id}.json`), JSON.stringify(e) + '\n');
    renameSync(join(spool.tmpDir, `${id}.eml`), join(spool.dir, `${id}.eml`));
    renameSync(join(spool.tmpDir, `${id}.json`), join(spool.dir, `${id}.json`));
    ids.push(id);
  }
  const again = new Spool(dir);
  const r = await again.recover();
  assert.equal(r.messages, 2);
  assert.deepEqual(r.removedOrphans, []);
  for (const [i, id] of ids.entries()) {
    const e = (await again.read(id))!;
    assert.deepEqual(await again.readMessage(id, e.spoolPrefix), message(`old ${i}`));
  }
  assert.equal(again.spooledFile((await again.read(ids[0]))!)?.path, join(again.dir, `${ids[0]}.eml`), 'the old file is still linkable');
});

test('recover drops tmp files and messages without envelope, keeps committed messages', async (t) => {
  const dir = tempDir(t);
  const spool = new Spool(dir);
  await spool.init();
  const kept = await spool.enqueue(message('kept'), envelope('a@corp.example', 'b@corp.example'));
  const orphan = newQueueId();
  writeFileSync(join(spool.dir, `${orphan}.eml`), message('crashed between the renames'));
  const halfDeleted = newQueueId();
  writeFileSync(join(spool.dir, `${halfDeleted}.json`), JSON.stringify({ id: halfDeleted, from: '', recipients: [] }));
  const unrelated = newQueueId();
  writeFileSync(join(spool.tmpDir, `${unrelated}.eml`), 'partial');
  writeFileSync(join(spool.tmpDir, `${unrelated}.json`), '{"id":');
  writeFileSync(join(spool.dir, 'README'), 'not ours, left alone');

  // A new process: the spool is rebuilt from disk only.
  const again = new Spool(dir);
  const r = await again.recover();
  assert.equal(r.messages, 1);
  assert.equal(r.removedTmp, 2);
  assert.deepEqual(r.removedOrphans.sort(), [orphan, halfDeleted].sort());
  assert.deepEqual(readdirSync(again.tmpDir), []);
  assert.deepEqual(readdirSync(again.dir).sort(), [`${kept}.eml`, `${kept}.json`, 'README', 'tmp'].sort());
  assert.deepEqual((await again.list()).map((e) => e.id), [kept]);
  assert.equal((await again.readMessage(kept)).toString(), message('kept').toString());
});

test('update replaces the envelope atomically; remove takes both files; a removed message is not revived', async (t) => {
  const { spool } = await tempSpool(t);
  const id = await spool.enqueue(message(), envelope('a@corp.example', 'b@corp.example'));
  const e = (await spool.read(id))!;
  e.attempts = 3;
  e.recipients[0].lastResult = '451 4.2.0 try later';
  assert.equal(await spool.update(e), true);
  assert.deepEqual(await spool.read(id), e);
  assert.deepEqual(readdirSync(spool.tmpDir), []);
  const modified = await spool.modify(id, (x) => {
    x.nextAttemptAt = '2030-01-01T00:00:00.000Z';
  });
  assert.equal(modified?.nextAttemptAt, '2030-01-01T00:00:00.000Z');
  assert.equal((await spool.read(id))!.attempts, 3);

  assert.equal(await spool.remove(id), true);
  assert.equal(await spool.remove(id), false);
  assert.equal(await spool.read(id), null);
  await assert.rejects(spool.readMessage(id), NotQueuedError);
  assert.equal(await spool.update(e), false, 'an update after a delete writes nothing');
  assert.equal(await spool.modify(id, () => undefined), null);
  assert.equal(existsSync(join(spool.dir, `${id}.json`)), false);
  assert.deepEqual(queueFiles(spool.dir), []);
});

test('list skips an envelope whose message is gone (a delete under way) and unreadable envelopes', async (t) => {
  const { spool } = await tempSpool(t);
  const a = await spool.enqueue(message(), envelope('a@corp.example', 'b@corp.example'));
  const b = await spool.enqueue(message(), envelope('a@corp.example', 'c@corp.example'));
  const c = await spool.enqueue(message(), envelope('a@corp.example', 'd@corp.example'));
  const { unlinkSync } = await import('node:fs');
  unlinkSync(join(spool.dir, `${b}.eml`));
  writeFileSync(join(spool.dir, `${c}.json`), '{ not json');
  assert.deepEqual((await spool.list()).map((e) => e.id), [a]);
  assert.throws(() => spool.messagePath('../../etc/passwd'), InvalidQueueIdError);
  await assert.rejects(spool.read('x'), InvalidQueueIdError);
});

test('a spool that was never created lists as empty (the CLI on a fresh machine)', async (t) => {
  const spool = new Spool(join(tempDir(t), 'nothing-here'));
  assert.deepEqual(await spool.list(), []);
  assert.equal(await spool.remove(newQueueId()), false);
  assert.equal(await spool.read(newQueueId()), null);
});

test('one server per spool: the lock is refused to a second holder, here or in another process, until released', async (t) => {
  const { SpoolLockedError } = await import('../../../src/queue/lock.ts');
  const { execFile } = await import('node:child_process');
  const { promisify } = await import('node:util');
  const dir = tempDir(t);
  const first = new Spool(dir);
  await first.lock();
  t.after(() => first.unlock());
  const second = new Spool(dir);
  await assert.rejects(second.lock(), (err: unknown) => {
    assert.ok(err instanceof SpoolLockedError);
    assert.match(err.message, new RegExp(`already run by another postern server \\(pid ${process.pid}\\)`));
    return true;
  });
  // Another process sees the lock too (a POSIX lock, dropped by the kernel when its holder dies).
  const script =
    `import { Spool } from ${JSON.stringify(new URL('../../../src/queue/spool.ts', import.meta.url).href)};` +
    `try { await new Spool(${JSON.stringify(dir)}).lock(); console.log('locked'); } catch (e) { console.log(e.name); }`;
  const run = () => promisify(execFile)(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script]);
  assert.equal((await run()).stdout.trim(), 'SpoolLockedError');
  first.unlock();
  assert.equal((await run()).stdout.trim(), 'locked', 'free once released (and the child exiting released its own)');
  await second.lock();
  second.unlock();
  // The lock files are not queue files.
  assert.deepEqual(await second.list(), []);
  assert.deepEqual((await second.recover()).removedOrphans, []);
});

test('scan() reads an envelope again only when its file changed (or when asked), and lists every queued id', async (t) => {
  const { spool } = await tempSpool(t);
  const a = await spool.enqueue(message('a'), envelope('alice@corp.example', 'bob@partner.example'));
  const b = await spool.enqueue(message('b'), envelope('alice@corp.example', 'bob@partner.example'));
  const first = await spool.scan(() => false);
  assert.deepEqual(first.ids, [a, b].sort());
  assert.deepEqual(first.envelopes.map((e) => e.id).sort(), [a, b].sort(), 'never seen: read');
  const second = await spool.scan(() => false);
  assert.deepEqual(second.ids, [a, b].sort());
  assert.deepEqual(second.envelopes, [], 'unchanged: not read');
  // What `postern queue flush` does from another process: a new envelope file renamed over the old one.
  await spool.modify(a, (e) => {
    e.nextAttemptAt = new Date(0).toISOString();
  });
  const third = await spool.scan((id) => id === b);
  assert.deepEqual(third.envelopes.map((e) => e.id).sort(), [a, b].sort(), 'a changed, b asked for');
  assert.equal(third.envelopes.find((e) => e.id === a)?.nextAttemptAt, new Date(0).toISOString());
  await spool.remove(b);
  assert.deepEqual((await spool.scan(() => true)).ids, [a]);
});

test('the first delivery attempt gets the message from memory; a removed message is not kept', async (t) => {
  const { spool } = await tempSpool(t);
  const id = await spool.enqueue(message('fresh'), envelope('alice@corp.example', 'bob@partner.example'));
  assert.match((await spool.readMessage(id)).toString(), /Subject: fresh/);
  assert.match((await spool.readMessage(id)).toString(), /Subject: fresh/, 'later reads come from the file');
  const gone = await spool.enqueue(message('gone'), envelope('alice@corp.example', 'bob@partner.example'));
  await spool.remove(gone);
  await assert.rejects(spool.readMessage(gone), NotQueuedError);
});

test('a spool prefix (for local delivery by link) precedes the message in the file and is never part of what is read', async (t) => {
  const prefixFor = (e: { from: string; recipients: { address: string }[] }) =>
    e.recipients.length === 1 ? `Return-Path: <${e.from}>\r\nDelivered-To: ${e.recipients[0].address}\r\n` : undefined;
  const { dir, spool } = await tempSpool(t, { prefixFor });
  const bytes = message('linked');
  const one = await spool.enqueue(bytes, envelope('alice@corp.example', 'bob@corp.example'));
  const two = await spool.enqueue(bytes, envelope('alice@corp.example', 'bob@corp.example', 'carol@corp.example'));
  const prefix = 'Return-Path: <alice@corp.example>\r\nDelivered-To: bob@corp.example\r\n';
  assert.deepEqual(readFileSync(join(spool.dir, `${one}.eml`)), Buffer.concat([Buffer.from(prefix), bytes]));
  const e = (await spool.read(one))!;
  assert.equal(e.spoolPrefix, prefix);
  assert.equal(e.size, bytes.length, 'size is the message alone');
  assert.deepEqual(spool.spooledFile(e), { path: spool.messagePath(one), prefix });
  // Read back fresh (kept from enqueue) and from the disk (another process: the CLI, a restarted server).
  assert.deepEqual(await spool.readMessage(one, e.spoolPrefix), bytes);
  assert.deepEqual(await new Spool(dir).readMessage(one, e.spoolPrefix), bytes);
  const e2 = (await spool.read(two))!;
  assert.equal(e2.spoolPrefix, undefined, 'several recipients: no prefix');
  assert.equal(spool.spooledFile(e2), undefined);
  assert.deepEqual(readFileSync(join(spool.dir, `${two}.eml`)), bytes);
});

test('the first attempt gets the envelope just committed without reading it back; later ones and updated ones read the file', async (t) => {
  const { spool } = await tempSpool(t);
  const id = await spool.enqueue(message(), envelope('alice@corp.example', 'bob@corp.example'));
  const onDisk = await spool.read(id);
  // The file is changed behind the spool's back (as only another process could): the first attempt does not see it.
  const path = spool.envelopePath(id);
  writeFileSync(path, JSON.stringify({ ...onDisk, attempts: 7 }) + '\n');
  assert.deepEqual(await spool.readForAttempt(id), onDisk, 'the committed envelope, from memory');
  assert.equal((await spool.readForAttempt(id))!.attempts, 7, 'taken once: the next attempt reads the file');
  // An update makes the kept envelope stale before the first attempt.
  const id2 = await spool.enqueue(message(), envelope('alice@corp.example', 'bob@corp.example'));
  const e2 = (await spool.read(id2))!;
  e2.attempts = 3;
  assert.equal(await spool.update(e2), true);
  assert.equal((await spool.readForAttempt(id2))!.attempts, 3);
});

test('a lazy removal (a delivered message) takes no fsync of its own: the next enqueue covers it, settle() or a timer makes one', async (t) => {
  const syncs: string[] = [];
  const unlinked: string[] = [];
  const { spool } = await tempSpool(t, {
    fs: {
      syncDir: async () => {
        syncs.push('dir');
      },
      unlink: async () => {
        throw new Error('a lazy removal unlinks on the thread pool, not with the synchronous call');
      },
      unlinkPooled: async (path) => {
        unlinked.push(path);
        const { unlinkSync } = await import('node:fs');
        unlinkSync(path);
      },
    },
  });
  const a = await spool.enqueue(message(), envelope('a@corp.example', 'b@corp.example'));
  const b = await spool.enqueue(message(), envelope('a@corp.example', 'c@corp.example'));
  assert.equal(syncs.length, 2);
  assert.equal(await spool.remove(a, undefined, { lazy: true }), true);
  assert.deepEqual(unlinked, [spool.envelopePath(a), spool.messagePath(a)], 'envelope first: from then on it is not queued');
  assert.equal(await spool.read(a), null);
  assert.equal(syncs.length, 2, 'not waited for');
  await spool.enqueue(message(), envelope('a@corp.example', 'd@corp.example'));
  assert.equal(syncs.length, 3, "the enqueue's fsync covers the removal");
  await spool.settle();
  assert.equal(syncs.length, 3, 'nothing left to make durable');
  assert.equal(await spool.remove(b, undefined, { lazy: true }), true);
  await spool.settle();
  assert.equal(syncs.length, 4, 'settle() makes the pending removal durable');
  assert.equal(await spool.remove(b, undefined, { lazy: true }), false, 'a second removal finds nothing');
});

test('a lazy removal left alone is made durable by a timer, with no other fsync to ride on', async (t) => {
  let syncs = 0;
  const { spool } = await tempSpool(t, { fs: { syncDir: async () => void syncs++ } });
  const a = await spool.enqueue(message(), envelope('a@corp.example', 'b@corp.example'));
  assert.equal(syncs, 1);
  await spool.remove(a, undefined, { lazy: true });
  const { waitFor } = await import('../../helpers/wait.ts');
  await waitFor('the lazy fsync', () => syncs === 2, { timeoutMs: 30_000 });
  assert.deepEqual(queueFiles(spool.dir), []);
});

test('an admin delete is never lazy: it waits for its fsync', async (t) => {
  let syncs = 0;
  const { spool } = await tempSpool(t, { fs: { syncDir: async () => void syncs++ } });
  const a = await spool.enqueue(message(), envelope('a@corp.example', 'b@corp.example'));
  assert.equal(await spool.remove(a, 'cli:root', { lazy: true }), true);
  assert.equal(syncs, 2);
});

test('the queue directory is fsynced through one descriptor held open, closed at unlock once no fsync uses it', async (t) => {
  const dir = tempDir(t);
  const spool = new Spool(dir);
  await spool.lock();
  const queueDir = join(dir, 'queue');
  // Our own descriptors that name queue/ (the lock file is queue/.lock, not the directory).
  const held = () => readdirSync('/proc/self/fd').filter((fd) => { try { return readlinkSync(`/proc/self/fd/${fd}`) === queueDir; } catch { return false; } }).length;
  assert.equal(held(), 0, 'not opened before the first commit');
  await Promise.all(Array.from({ length: 20 }, (_, i) => spool.enqueue(message(`m${i}`), envelope('a@corp.example', 'b@corp.example'))));
  assert.equal(held(), 1, 'one descriptor for all the commits');
  assert.ok(spool.stats.dirSyncs >= 1 && spool.stats.dirSyncs < 20, `group commit: ${spool.stats.dirSyncs} fsyncs for 20`);
  const last = spool.enqueue(message('in flight at unlock'), envelope('a@corp.example', 'b@corp.example'));
  spool.unlock();
  const id = await last;
  assert.ok(await spool.has(id), 'the commit in flight at unlock finished');
  await waitFor('the held descriptor closed', () => held() === 0);
  // After unlock the directory is opened for each fsync, and still fsynced.
  await spool.enqueue(message('after unlock'), envelope('a@corp.example', 'b@corp.example'));
  assert.equal(held(), 0);
});

test('HeldDir: a directory that cannot be opened fails the sync, and a later sync opens it again', async (t) => {
  const dir = tempDir(t);
  const h = new HeldDir(join(dir, 'later'));
  await assert.rejects(h.sync(), (err: NodeJS.ErrnoException) => err.code === 'ENOENT');
  mkdirSync(join(dir, 'later'));
  await h.sync();
  h.close();
});
