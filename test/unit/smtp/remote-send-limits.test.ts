/**
 * The send limits of an SMTP worker (src/smtp/workers.ts RemoteSendLimits), wired through an in-process channel to
 * the real SendLimits of the main process (src/limits/send-limits.ts) with the real settings database: only
 * authenticated sessions cross the channel, and the limits hold exactly as when every call crossed it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../../src/lib/logger.ts';
import type { SmtpError } from '../../../src/lib/errors.ts';
import { SendLimits } from '../../../src/limits/send-limits.ts';
import { SqliteCounterStore } from '../../../src/limits/store.ts';
import { openSettings } from '../../../src/settings/store.ts';
import { fromWire, RemoteSendLimits, toWire, type FromSmtpWorker } from '../../../src/smtp/workers.ts';

function setup(t: { after(fn: () => void): void }, values: Record<string, unknown>) {
  const dir = mkdtempSync(join(tmpdir(), 'postern-remote-limits-'));
  const settings = openSettings(dir);
  for (const [k, v] of Object.entries(values)) settings.set(k as never, v as never);
  const main = new SendLimits({ settings, log: silentLogger, store: SqliteCounterStore.open(dir) });
  t.after(() => {
    main.close();
    settings.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const seen: FromSmtpWorker['t'][] = [];
  // What the main process does with a worker's messages (SmtpWorkers.spawn / limit), answered on a later turn as
  // an IPC reply would be.
  const remote: RemoteSendLimits = new RemoteSendLimits((m) => {
    seen.push(m.t);
    if (m.t === 'limit') {
      const subject = { ...m.subject, log: silentLogger };
      const r = m.op === 'mail' ? main.checkMail(subject) : main.checkRcpt(subject);
      void Promise.resolve(r).then((err) => setImmediate(() => remote.answer(m.req, toWire(err))));
    } else if (m.t === 'accepted') main.accepted(m.id);
    else if (m.t === 'release') main.release(m.id);
    return true;
  });
  return { remote, seen };
}

const ask = async (r: Promise<SmtpError | null> | SmtpError | null) => fromWire(toWire(await r));

test('a session without a login sends nothing to the main process and is never limited', async (t) => {
  const { remote, seen } = setup(t, { 'smtp.sendLimit.messagesPerHour': 1, 'smtp.sendLimit.ipMessagesPerHour': 1 });
  const s = { id: 'mta-1', ip: '192.0.2.7', log: silentLogger };
  for (let i = 0; i < 5; i++) {
    assert.equal(await ask(remote.checkMail(s)), null, `message ${i + 1} from another MTA`);
    assert.equal(await ask(remote.checkRcpt(s)), null);
    remote.accepted(s.id);
  }
  remote.release(s.id);
  assert.deepEqual(seen, []);
  assert.equal(remote.sent, 0);
});

test('an authenticated session is counted by the main process: the limit holds, and a refused DATA gives it back', async (t) => {
  const { remote, seen } = setup(t, { 'smtp.sendLimit.messagesPerHour': 2 });
  const s = { id: 'user-1', login: 'john.smith', ip: '192.0.2.8', log: silentLogger };
  assert.equal(await ask(remote.checkMail(s)), null);
  assert.equal(await ask(remote.checkRcpt(s)), null);
  remote.release(s.id); // DATA refused: nothing counts
  assert.equal(await ask(remote.checkMail(s)), null);
  remote.accepted(s.id);
  assert.equal(await ask(remote.checkMail(s)), null);
  remote.accepted(s.id);
  const refused = await ask(remote.checkMail(s));
  assert.ok(refused, 'the third message of the hour is refused');
  assert.equal(refused.code, 451);
  assert.equal(refused.enhanced, '4.7.1');
  assert.deepEqual(seen, ['limit', 'limit', 'release', 'limit', 'accepted', 'limit', 'accepted', 'limit']);
});

test('a transaction opened with a login and followed by one without (STARTTLS forgot the user) gives its reservation back', async (t) => {
  const { remote, seen } = setup(t, { 'smtp.sendLimit.messagesPerHour': 1 });
  const user = { id: 'sess-1', login: 'john.smith', ip: '192.0.2.9', log: silentLogger };
  assert.equal(await ask(remote.checkMail(user)), null, 'the one message of the hour is reserved');
  assert.equal(await ask(remote.checkMail({ id: 'sess-1', ip: '192.0.2.9', log: silentLogger })), null);
  assert.deepEqual(seen, ['limit', 'release']);
  // The reservation went back: the same user may still send one message this hour.
  assert.equal(await ask(remote.checkMail({ ...user, id: 'sess-2' })), null);
});
