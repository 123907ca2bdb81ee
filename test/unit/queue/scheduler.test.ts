import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, rmSync, mkdtempSync } from 'node:fs';
import { Writable } from 'node:stream';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger, silentLogger } from '../../../src/lib/logger.ts';
import { earliest, Scheduler, type FinishedEvent, type SchedulerOptions, type AttemptEvent } from '../../../src/queue/scheduler.ts';
import { Spool } from '../../../src/queue/spool.ts';
import { openSettings } from '../../../src/settings/store.ts';
import type { QueueRecipient } from '../../../src/queue/types.ts';
import { envelope, fakeAgent, message, parseDeliveryStatus, parseEntity, parseMultipart, queueFiles, rcpt, until } from './helpers.ts';

const FAST = { retryMinSeconds: 0.05, retryMaxSeconds: 1, concurrency: 4, scanIntervalSeconds: 0.05 };

type Ctx = { after(fn: () => unknown): void };

/** A spool in a temp dir and a scheduler on it; both cleaned up (scheduler stopped first) after the test. */
async function setup(t: Ctx, agent: SchedulerOptions['agent'], opts: Partial<SchedulerOptions> = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'postern-sched-'));
  const spool = new Spool(dir);
  await spool.init();
  const scheduler = new Scheduler({
    spool,
    settings: { get: () => 96 },
    config: FAST,
    hostname: 'mail.corp.example',
    log: silentLogger,
    agent,
    ...opts,
    ...(opts.config ? { config: { ...FAST, ...opts.config } } : {}),
  });
  t.after(async () => {
    await scheduler.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const history: FinishedEvent[] = [];
  scheduler.on('finished', (e) => history.push(e));
  finishedBefore.set(scheduler, history);
  return { dir, spool, scheduler };
}

/** Every 'finished' event of a scheduler made by setup(): a DSN can finish before the test asks for it. */
const finishedBefore = new WeakMap<Scheduler, FinishedEvent[]>();

function finished(s: Scheduler, id: string | (() => string), timeoutMs = 5000): Promise<FinishedEvent> {
  const past = typeof id === 'string' ? finishedBefore.get(s)?.find((e) => e.id === id) : undefined;
  if (past) return Promise.resolve(past);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`message did not finish in ${timeoutMs} ms`)), timeoutMs);
    const on = (e: FinishedEvent) => {
      if (e.id !== (typeof id === 'function' ? id() : id)) return;
      clearTimeout(timer);
      s.off('finished', on);
      resolve(e);
    };
    s.on('finished', on);
  });
}

function nextAttempt(s: Scheduler, id: string, timeoutMs = 5000): Promise<AttemptEvent> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no attempt of ${id} in ${timeoutMs} ms`)), timeoutMs);
    const on = (e: AttemptEvent) => {
      if (e.id !== id) return;
      clearTimeout(timer);
      s.off('attempted', on);
      resolve(e);
    };
    s.on('attempted', on);
  });
}

const delivered = () => ({ state: 'delivered' as const });
const tempfail = { state: 'pending' as const, result: '451 4.2.0 try again later', status: '4.2.0', remoteMta: 'mx.partner.example' };
const unknownUser = { state: 'failed' as const, result: '550 5.1.1 <bob@partner.example>: user unknown', status: '5.1.1', remoteMta: 'mx.partner.example' };

test('delivers a queued message and removes it from the spool', async (t) => {
  const agent = fakeAgent(delivered);
  const { spool, scheduler } = await setup(t, agent);
  await scheduler.start();
  const body = message('deliver me');
  let id = '';
  const done = finished(scheduler, () => id);
  id = await spool.enqueue(body, envelope('alice@corp.example', 'bob@partner.example', 'carol@corp.example'));
  const e = await done;
  assert.equal(e.reason, 'done');
  assert.equal(e.dsnId, undefined);
  assert.deepEqual(e.envelope!.recipients.map((r) => r.state), ['delivered', 'delivered']);
  assert.equal(e.envelope!.attempts, 1);
  assert.equal(agent.calls.length, 1);
  assert.deepEqual(agent.calls[0].message, body, 'the agent gets the exact bytes');
  assert.deepEqual(await spool.list(), []);
  assert.deepEqual(queueFiles(spool.dir), []);
});

test('retries a temporary failure with a growing delay, then delivers', async (t) => {
  const agent = fakeAgent((_r, _e, call) => (call <= 3 ? tempfail : delivered()));
  const { spool, scheduler } = await setup(t, agent);
  await scheduler.start();
  const attempts: AttemptEvent[] = [];
  scheduler.on('attempted', (a) => attempts.push(structuredClone(a)));
  let id = '';
  const done = finished(scheduler, () => id);
  id = await spool.enqueue(message(), envelope('alice@corp.example', 'bob@partner.example'));
  const e = await done;
  assert.equal(e.reason, 'done');
  assert.equal(agent.calls.length, 4);
  assert.equal(e.envelope!.attempts, 4);
  // The schedule written after each attempt: at least retryMinSeconds doubling (50, 100, 200 ms) after it started.
  // Only lower bounds: the attempt's own time on a loaded machine adds to each; the doubling itself is the
  // retryDelayMs test below.
  const planned = attempts.map((a) => Date.parse(a.envelope.nextAttemptAt) - Date.parse(a.envelope.lastAttemptAt!));
  assert.equal(planned.length, 3);
  for (const [i, want] of [50, 100, 200].entries()) assert.ok(planned[i] >= want, `planned delay ${i + 1}: ${planned[i]} ms, want ≥ ${want}`);
  // And it is kept: no attempt comes before its delay.
  const gaps = agent.calls.slice(1).map((c, i) => c.at - agent.calls[i].at);
  for (const [i, want] of [50, 100, 200].entries()) assert.ok(gaps[i] >= want - 2, `gap ${i + 1}: ${gaps[i]} ms, want ≥ ${want}`);
  // The envelope on disk between attempts said the same.
  assert.equal(attempts[0].envelope.recipients[0].lastResult, '451 4.2.0 try again later');
  assert.equal(attempts[2].envelope.attempts, 3);
});

test('the delay is capped at retryMaxSeconds', async () => {
  const { retryDelayMs } = await import('../../../src/queue/retry.ts');
  const cfg = { retryMinSeconds: 300, retryMaxSeconds: 4000 };
  assert.deepEqual([1, 2, 3, 4, 5, 6, 100, 10_000].map((n) => retryDelayMs(n, cfg) / 1000), [300, 600, 1200, 2400, 4000, 4000, 4000, 4000]);
});

test('bounces a permanent failure with a DSN to the sender; hidden recipients are not named', async (t) => {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      for (const l of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(l));
      cb();
    },
  });
  const agent = fakeAgent((r, e) =>
    e.from === '' ? delivered() : r.address === 'carol@corp.example' ? delivered() : unknownUser,
  );
  const { spool, scheduler } = await setup(t, agent, { log: createLogger('debug', sink) });
  await scheduler.start();
  const original = message('Lunch on Friday');
  let id = '';
  const done = finished(scheduler, () => id);
  id = await spool.enqueue(
    original,
    envelope('alice@corp.example', 'bob@partner.example', 'carol@corp.example', rcpt('archive@corp.example', { origin: 'bcc', hidden: true })),
  );
  const e = await done;
  assert.equal(e.reason, 'done');
  assert.ok(e.dsnId, 'a DSN was queued');
  assert.deepEqual(
    e.envelope!.recipients.map((r) => [r.address, r.state]),
    [
      ['bob@partner.example', 'failed'],
      ['carol@corp.example', 'delivered'],
      ['archive@corp.example', 'failed'],
    ],
  );

  // The DSN went through the spool like any message: null sender, the original sender as recipient.
  const dsnDone = await finished(scheduler, e.dsnId!);
  assert.equal(dsnDone.reason, 'done');
  const dsnCall = agent.calls.find((c) => c.envelope.id === e.dsnId)!;
  assert.equal(dsnCall.envelope.from, '');
  assert.deepEqual(dsnCall.envelope.recipients.map((r) => r.address), ['alice@corp.example']);
  assert.equal(dsnCall.envelope.client.listener, 'local');

  const dsn = parseEntity(dsnCall.message.toString('utf8'));
  assert.equal(dsn.headers.get('to'), '<alice@corp.example>');
  assert.match(dsn.headers.get('from')!, /<MAILER-DAEMON@mail\.corp\.example>$/);
  assert.equal(dsn.headers.get('auto-submitted'), 'auto-replied');
  assert.match(dsn.headers.get('content-type')!, /^multipart\/report; report-type=delivery-status;/);
  const [human, status, headers] = parseMultipart(dsn);
  assert.match(human.body, /<bob@partner\.example>: host mx\.partner\.example said: 550 5\.1\.1/);
  assert.doesNotMatch(dsnCall.message.toString(), /archive@corp\.example|carol@corp\.example/);
  const [perMessage, ...perRecipient] = parseDeliveryStatus(status.body);
  assert.equal(perMessage.get('reporting-mta'), 'dns; mail.corp.example');
  assert.equal(perMessage.get('arrival-date'), new Date(e.envelope!.receivedAt).toUTCString().replace('GMT', '+0000'));
  assert.equal(perRecipient.length, 1);
  assert.equal(perRecipient[0].get('final-recipient'), 'rfc822; bob@partner.example');
  assert.equal(perRecipient[0].get('action'), 'failed');
  assert.equal(perRecipient[0].get('status'), '5.1.1');
  assert.equal(perRecipient[0].get('remote-mta'), 'dns; mx.partner.example');
  assert.equal(perRecipient[0].get('diagnostic-code'), 'smtp; 550 5.1.1 <bob@partner.example>: user unknown');
  assert.ok(perRecipient[0].get('last-attempt-date'));
  assert.equal(headers.headers.get('content-type'), 'text/rfc822-headers');
  assert.match(headers.body, /^Subject: Lunch on Friday\r$/m);

  assert.deepEqual(await spool.list(), [], 'both messages left the queue');
  // Every log line is the queue's and names its message.
  assert.ok(lines.length > 5);
  for (const l of lines) {
    assert.equal(l.component, 'queue', JSON.stringify(l));
    if (l.msg !== 'queue started') assert.match(String(l.queueId), /^[0-9A-Z]{16}$/, JSON.stringify(l));
  }
  assert.ok(lines.some((l) => l.msg === 'bounced' && l.to === 'bob@partner.example' && l.queueId === id));
  assert.ok(lines.some((l) => l.msg === 'sender non-delivery notification' && l.dsnId === e.dsnId));
});

test('sends no DSN for a message from the null sender <>', async (t) => {
  const agent = fakeAgent(() => unknownUser);
  const { spool, scheduler } = await setup(t, agent);
  await scheduler.start();
  let enqueuedAfter = 0;
  spool.on('enqueued', () => enqueuedAfter++);
  let id = '';
  const done = finished(scheduler, () => id);
  id = await spool.enqueue(message(), envelope('', 'bob@partner.example'));
  enqueuedAfter = 0;
  const e = await done;
  assert.equal(e.dsnId, undefined);
  assert.equal(e.envelope!.recipients[0].state, 'failed');
  assert.equal(enqueuedAfter, 0);
  assert.deepEqual(await spool.list(), []);
});

test('sends no DSN when only hidden (Bcc) recipients failed', async (t) => {
  const agent = fakeAgent((r) => (r.hidden ? unknownUser : delivered()));
  const { spool, scheduler } = await setup(t, agent);
  await scheduler.start();
  let id = '';
  const done = finished(scheduler, () => id);
  id = await spool.enqueue(message(), envelope('alice@corp.example', 'bob@partner.example', rcpt('audit@corp.example', { hidden: true, origin: 'bcc' })));
  assert.equal((await done).dsnId, undefined);
});

test('expires after the queue lifetime: pending recipients fail with 4.4.7 and a DSN goes out', async (t) => {
  const agent = fakeAgent((r, e) => (e.from === '' ? delivered() : { ...tempfail, result: '451 4.4.1 connection timed out', status: '4.4.1' }));
  const { spool, scheduler } = await setup(t, agent, { lifetimeMs: () => 300 });
  await scheduler.start();
  let id = '';
  const done = finished(scheduler, () => id);
  const started = Date.now();
  id = await spool.enqueue(message(), envelope('alice@corp.example', 'bob@slow.example', 'carol@corp.example'));
  const e = await done;
  const took = Date.now() - started;
  assert.ok(took >= 300 && took < 1500, `expired after ${took} ms`);
  const calls = agent.calls.filter((c) => c.envelope.id === id);
  assert.ok(calls.length >= 3, `retried until the end of the lifetime (${calls.length} attempts)`);
  assert.ok(calls[calls.length - 1].at - started >= 295, 'the last attempt is at the end of the lifetime');
  for (const r of e.envelope!.recipients) {
    assert.equal(r.state, 'failed');
    assert.equal(r.status, '4.4.7');
    assert.equal(r.lastResult, '451 4.4.1 connection timed out', 'the last reply is kept for the DSN');
  }
  assert.ok(e.dsnId);
  await finished(scheduler, e.dsnId!);
  const dsnCall = agent.calls.find((c) => c.envelope.id === e.dsnId)!;
  const [human, status] = parseMultipart(parseEntity(dsnCall.message.toString()));
  assert.match(human.body, /the server gave up/);
  const recipients = parseDeliveryStatus(status.body).slice(1);
  assert.deepEqual(recipients.map((r) => [r.get('final-recipient'), r.get('action'), r.get('status'), r.get('diagnostic-code')]), [
    ['rfc822; bob@slow.example', 'failed', '4.4.7', 'smtp; 451 4.4.1 connection timed out'],
    ['rfc822; carol@corp.example', 'failed', '4.4.7', 'smtp; 451 4.4.1 connection timed out'],
  ]);
});

test('the lifetime comes from queue.lifetimeHours and a change applies without a restart', async (t) => {
  const settingsDir = mkdtempSync(join(tmpdir(), 'postern-sched-settings-'));
  const settings = openSettings(settingsDir);
  t.after(() => {
    settings.close();
    rmSync(settingsDir, { recursive: true, force: true });
  });
  settings.set('queue.lifetimeHours', 3);
  const agent = fakeAgent((_r, e) => (e.from === '' ? delivered() : tempfail));
  const { spool, scheduler } = await setup(t, agent, { settings, config: { ...FAST, retryMinSeconds: 60, retryMaxSeconds: 60 } });
  await scheduler.start();
  // Queued two hours ago (say the server was down): within 3 hours, so it is deferred, not expired.
  const twoHoursAgo = new Date(Date.now() - 2 * 3_600_000).toISOString();
  const id = await spool.enqueue(message(), { ...envelope('alice@corp.example', 'bob@partner.example'), receivedAt: twoHoursAgo });
  const deferred = await nextAttempt(scheduler, id);
  assert.equal(deferred.envelope.recipients[0].state, 'pending');
  settings.set('queue.lifetimeHours', 1);
  const done = finished(scheduler, id);
  await scheduler.flush([id]);
  const e = await done;
  assert.equal(e.envelope!.recipients[0].status, '4.4.7');
  assert.equal(agent.calls.filter((c) => c.envelope.id === id).length, 2, 'tried once more, then expired');
});

test('an agent that throws defers every pending recipient for this attempt', async (t) => {
  let calls = 0;
  const agent = {
    async deliver(e: Parameters<SchedulerOptions['agent']['deliver']>[0]): Promise<QueueRecipient[]> {
      calls++;
      if (calls === 1) {
        e.recipients[0].state = 'delivered'; // a half-done change to its copy must not leak
        throw new Error('smarthost configuration is broken');
      }
      return e.recipients.map((r) => ({ ...r, state: 'delivered' }));
    },
  };
  const { spool, scheduler } = await setup(t, agent);
  await scheduler.start();
  const id = await spool.enqueue(message(), envelope('alice@corp.example', 'bob@partner.example', 'carol@partner.example'));
  const a = await nextAttempt(scheduler, id);
  for (const r of a.envelope.recipients) {
    assert.equal(r.state, 'pending');
    assert.equal(r.attempts, 1);
    assert.equal(r.status, '4.3.0');
    assert.match(r.lastResult!, /^451 4\.3\.0 .*smarthost configuration is broken/);
  }
  assert.equal((await spool.read(id))!.recipients[0].status, '4.3.0', 'written to disk');
  const e = await finished(scheduler, id);
  assert.equal(e.reason, 'done');
  assert.equal(calls, 2);
});

test('at most `concurrency` deliveries run at once, and all get done', async (t) => {
  let active = 0;
  let peak = 0;
  const agent = fakeAgent(async () => {
    active++;
    peak = Math.max(peak, active);
    await new Promise((r) => setTimeout(r, 20));
    active--;
    return delivered();
  });
  const { spool, scheduler } = await setup(t, agent, { config: { ...FAST, concurrency: 3 } });
  await scheduler.start();
  const done: string[] = [];
  scheduler.on('finished', (e) => done.push(e.id));
  const ids = await Promise.all(Array.from({ length: 12 }, (_, i) => spool.enqueue(message(`m${i}`), envelope('a@corp.example', `u${i}@corp.example`))));
  await until(() => done.length === 12, 5000, 'all 12 delivered');
  assert.deepEqual([...done].sort(), [...ids].sort());
  assert.equal(peak, 3);
});

test('stop() waits for running deliveries, whose outcome is written', async (t) => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let entered!: () => void;
  const inAgent = new Promise<void>((r) => (entered = r));
  const agent = fakeAgent(async () => {
    entered();
    await gate;
    return tempfail;
  });
  const { spool, scheduler } = await setup(t, agent);
  await scheduler.start();
  const id = await spool.enqueue(message(), envelope('a@corp.example', 'b@partner.example'));
  await inAgent;
  let stopped = false;
  const stopping = scheduler.stop().then(() => (stopped = true));
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(stopped, false);
  release();
  await stopping;
  const e = (await spool.read(id))!;
  assert.equal(e.attempts, 1);
  assert.equal(e.recipients[0].lastResult, tempfail.result);
  assert.equal(agent.calls.length, 1, 'nothing more after stop');
});

test('a restarted server delivers what is on disk and drops what was never acknowledged', async (t) => {
  const agent = fakeAgent(delivered);
  const { dir, spool } = await setup(t, agent);
  const id = await spool.enqueue(message(), envelope('a@corp.example', 'b@partner.example'));
  const { writeFileSync } = await import('node:fs');
  const { newQueueId } = await import('../../../src/queue/id.ts');
  writeFileSync(join(spool.dir, `${newQueueId()}.eml`), 'never acknowledged');
  writeFileSync(join(spool.tmpDir, 'leftover.json'), '{');
  // A new process: a new spool and scheduler on the same directory.
  const spool2 = new Spool(dir);
  const scheduler2 = new Scheduler({ spool: spool2, settings: { get: () => 96 }, config: FAST, hostname: 'h', log: silentLogger, agent });
  t.after(() => scheduler2.stop());
  const done = finished(scheduler2, id);
  await scheduler2.start();
  assert.equal((await done).reason, 'done');
  assert.deepEqual(agent.calls.map((c) => c.envelope.id), [id]);
  assert.deepEqual(queueFiles(spool2.dir), []);
  assert.deepEqual(readdirSync(spool2.tmpDir), []);
  await scheduler2.stop();
});

test('a message deleted while it is being delivered leaves no file behind', async (t) => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let entered!: () => void;
  const inAgent = new Promise<void>((r) => (entered = r));
  const agent = fakeAgent(async () => {
    entered();
    await gate;
    return tempfail;
  });
  const { spool, scheduler } = await setup(t, agent);
  await scheduler.start();
  const id = await spool.enqueue(message(), envelope('a@corp.example', 'b@partner.example'));
  const done = finished(scheduler, id);
  await inAgent;
  assert.equal(await spool.remove(id), true);
  release();
  assert.equal((await done).reason, 'vanished');
  assert.deepEqual(queueFiles(spool.dir), []);
});

test('a second scheduler on the same spool refuses to start while the first runs', async (t) => {
  const { SpoolLockedError } = await import('../../../src/queue/lock.ts');
  const agent = fakeAgent(delivered);
  const { dir, scheduler } = await setup(t, agent);
  await scheduler.start();
  const other = new Scheduler({ spool: new Spool(dir), settings: { get: () => 96 }, config: FAST, hostname: 'h', log: silentLogger, agent });
  await assert.rejects(other.start(), SpoolLockedError);
  await scheduler.stop();
  await other.start();
  await other.stop();
});

test('the due messages started first are the earliest due, without sorting a whole backlog', () => {
  for (const n of [0, 1, 3, 20]) {
    const due = Array.from({ length: 500 }, (_, i) => ({ id: String(i), due: Math.floor(Math.random() * 100) }));
    const picked = earliest([...due], n).map((e) => e.due);
    assert.deepEqual(picked, due.map((e) => e.due).sort((a, b) => a - b).slice(0, n), `n = ${n}`);
  }
  assert.deepEqual(earliest([{ due: 2 }, { due: 1 }], 5), [{ due: 1 }, { due: 2 }]);
});

test('a delivered message leaves the queue without an fsync of its own, and stop() makes its removal durable', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'postern-sched-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const events: string[] = [];
  const spool = new Spool(dir, {
    fs: {
      syncDir: async () => void events.push('fsync'),
      unlinkPooled: async (path) => {
        events.push('unlink');
        (await import('node:fs')).unlinkSync(path);
      },
    },
  });
  await spool.init();
  // Whether the lazy fsync comes from its timer or from the stop, it comes after both unlinks.
  const scheduler = new Scheduler({ spool, settings: { get: () => 96 }, config: FAST, hostname: 'mail.corp.example', log: silentLogger, agent: fakeAgent(delivered) });
  await scheduler.start();
  const id = await spool.enqueue(message(), envelope('alice@corp.example', 'bob@partner.example'));
  events.length = 0;
  await finished(scheduler, id);
  assert.deepEqual(queueFiles(spool.dir), []);
  assert.deepEqual(events.slice(0, 2), ['unlink', 'unlink'], 'envelope and message unlinked, no fsync waited for');
  await scheduler.stop();
  assert.deepEqual(events.slice(0, 3), ['unlink', 'unlink', 'fsync'], 'durable by the stop at the latest');
});

test('a new message is tried while the next message waits for its fsync, not held back until that commit ends', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'postern-sched-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  // The directory fsync of the second enqueue hangs until the test lets it go.
  let hold: Promise<void> | undefined;
  let release = () => {};
  const spool = new Spool(dir, { fs: { syncDir: async () => hold } });
  await spool.init();
  const agent = fakeAgent(delivered);
  // No periodic scan in the test's time: only the scheduler's own start of a new message's attempt can deliver it.
  const scheduler = new Scheduler({ spool, settings: { get: () => 96 }, config: { ...FAST, scanIntervalSeconds: 600 }, hostname: 'mail.corp.example', log: silentLogger, agent });
  t.after(() => scheduler.stop());
  await scheduler.start();
  const first = await spool.enqueue(message('first'), envelope('alice@corp.example', 'bob@partner.example'));
  hold = new Promise<void>((r) => (release = r));
  let secondDone = false;
  const second = spool.enqueue(message('second'), envelope('alice@corp.example', 'carol@partner.example')).then((id) => {
    secondDone = true;
    return id;
  });
  await finished(scheduler, first);
  assert.equal(secondDone, false, 'the second commit is still waiting for its fsync');
  assert.deepEqual(agent.calls.map((c) => c.envelope.id), [first]);
  release();
  const id2 = await second;
  await finished(scheduler, id2);
  assert.deepEqual(agent.calls.map((c) => c.envelope.id), [first, id2]);
});
