/**
 * The send-limit counter (src/limits/window.ts), its store and the policy on top (src/limits/send-limits.ts), with
 * a clock of the test's own and the real settings database (migration 004: per-user limits).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { createLogger } from '../../../src/lib/logger.ts';
import { SmtpError } from '../../../src/lib/errors.ts';
import { clientKey, SendLimits } from '../../../src/limits/send-limits.ts';
import { LIMITS_DB_FILE, SqliteCounterStore } from '../../../src/limits/store.ts';
import { SlidingWindow } from '../../../src/limits/window.ts';
import { openSettings, type Settings } from '../../../src/settings/store.ts';

const MIN = 60_000;

function tempDir(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'postern-limits-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function logLines() {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      for (const l of String(chunk).split('\n')) if (l.trim()) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { log: createLogger('debug', stream), lines };
}

interface Fixture {
  dir: string;
  settings: Settings;
  limits: SendLimits;
  clock: { ms: number };
  lines: Record<string, unknown>[];
  reopen(): SendLimits;
}

function setup(t: { after(fn: () => void): void }, values: Record<string, unknown> = {}): Fixture {
  const dir = tempDir(t);
  const settings = openSettings(dir);
  for (const [k, v] of Object.entries(values)) settings.set(k as never, v as never);
  const clock = { ms: Date.UTC(2026, 11, 1, 9, 0, 30) };
  const { log, lines } = logLines();
  const open = () => new SendLimits({ settings, log, store: SqliteCounterStore.open(dir), now: () => clock.ms });
  const f: Fixture = {
    dir,
    settings,
    limits: open(),
    clock,
    lines,
    reopen() {
      f.limits.close();
      f.limits = open();
      return f.limits;
    },
  };
  t.after(() => {
    f.limits.close();
    settings.close();
  });
  return f;
}

/** The embedded counters answer at once (the hooks never wait for them). */
function sync<T>(v: T | Promise<T>): T {
  assert.ok(!(v instanceof Promise), 'answered synchronously');
  return v as T;
}

const subject = (id: string, login: string | undefined, ip: string, log = createLogger('silent')) => ({ id, login, ip, log });

/** One whole accepted message of `n` recipients; returns the first refusal, if any. */
function send(l: SendLimits, s: ReturnType<typeof subject>, n = 1): SmtpError | null {
  const mail = sync(l.checkMail(s));
  if (mail) return mail;
  for (let i = 0; i < n; i++) {
    const rcpt = sync(l.checkRcpt(s));
    if (rcpt) {
      l.release(s.id);
      return rcpt;
    }
  }
  l.accepted(s.id);
  return null;
}

test('the window counts the last 60 minutes, to the minute', () => {
  const w = new SlidingWindow();
  w.add('user:a', 1000, { messages: 2, recipients: 5 });
  w.add('user:a', 1030, { messages: 1, recipients: 1 });
  assert.deepEqual(w.count('user:a', 1030), { messages: 3, recipients: 6 });
  assert.deepEqual(w.count('user:a', 1059), { messages: 3, recipients: 6 });
  assert.deepEqual(w.count('user:a', 1060), { messages: 1, recipients: 1 }, 'minute 1000 left the window');
  assert.deepEqual(w.count('user:a', 1090), { messages: 0, recipients: 0 });
  // A slot reused an hour later starts from zero, not from the old minute's counts.
  w.add('user:a', 1120, { messages: 1, recipients: 1 });
  assert.deepEqual(w.count('user:a', 1120), { messages: 1, recipients: 1 });
  assert.deepEqual(w.count('user:b', 1120), { messages: 0, recipients: 0 });
  assert.equal(w.prune(1180), 1);
  assert.equal(w.size, 0);
});

test('the window hands its changed buckets to the store and loads them back', () => {
  const w = new SlidingWindow();
  w.add('user:a', 500, { messages: 1, recipients: 2 });
  w.add('user:a', 500, { messages: 1, recipients: 3 });
  w.add('ip:192.0.2.1', 501, { messages: 1, recipients: 1 });
  const rows = w.takeDirty();
  assert.deepEqual(
    rows.sort((a, b) => a.minute - b.minute),
    [
      { key: 'user:a', minute: 500, messages: 2, recipients: 5 },
      { key: 'ip:192.0.2.1', minute: 501, messages: 1, recipients: 1 },
    ],
  );
  assert.deepEqual(w.takeDirty(), [], 'nothing changed since');
  const again = new SlidingWindow();
  again.load([...rows, { key: 'user:old', minute: 400, messages: 9, recipients: 9 }], 510);
  assert.deepEqual(again.count('user:a', 510), { messages: 2, recipients: 5 });
  assert.deepEqual(again.count('user:old', 510), { messages: 0, recipients: 0 }, 'rows older than the window are ignored');
});

test('client keys: IPv4 as is, IPv4-mapped as IPv4, IPv6 by its /64', () => {
  assert.equal(clientKey('192.0.2.7'), '192.0.2.7');
  assert.equal(clientKey('::ffff:192.0.2.7'), '192.0.2.7');
  assert.equal(clientKey('2001:db8:0:12::1'), '2001:db8:0:12::/64');
  assert.equal(clientKey('2001:0db8:0000:0012:aaaa:bbbb:cccc:dddd'), '2001:db8:0:12::/64');
  assert.equal(clientKey('2001:db8::1'), '2001:db8:0:0::/64');
  assert.equal(clientKey('::1'), '0:0:0:0::/64');
});

test('the defaults: 500 messages and 2000 recipients per user and hour, 1000/4000 per address', (t) => {
  const { settings } = setup(t);
  assert.equal(settings.get('smtp.sendLimit.messagesPerHour'), 500);
  assert.equal(settings.get('smtp.sendLimit.recipientsPerHour'), 2000);
  assert.equal(settings.get('smtp.sendLimit.ipMessagesPerHour'), 1000);
  assert.equal(settings.get('smtp.sendLimit.ipRecipientsPerHour'), 4000);
});

test('past the message limit MAIL FROM is refused 451 4.7.1 until the hour has moved on', (t) => {
  const f = setup(t, { 'smtp.sendLimit.messagesPerHour': 3 });
  const s = subject('s1', 'John.Smith', '198.51.100.9');
  for (let i = 0; i < 3; i++) assert.equal(send(f.limits, s), null, `message ${i + 1}`);
  const refused = send(f.limits, s);
  assert.ok(refused instanceof SmtpError);
  assert.equal(refused.code, 451);
  assert.equal(refused.enhanced, '4.7.1');
  assert.equal(f.limits.refusals.get('user_messages'), 1);
  // Another login of any case is the same user.
  assert.ok(send(f.limits, subject('s2', 'JOHN.SMITH', '198.51.100.10')));
  f.clock.ms += 59 * MIN;
  assert.ok(send(f.limits, s), 'still within the hour');
  f.clock.ms += 1 * MIN;
  assert.equal(send(f.limits, s), null, 'the first minute left the window');
});

test('recipients are counted over messages and refused at RCPT TO past the limit', (t) => {
  const f = setup(t, { 'smtp.sendLimit.recipientsPerHour': 5 });
  const s = subject('s1', 'john.smith', '198.51.100.9');
  assert.equal(send(f.limits, s, 3), null);
  assert.equal(sync(f.limits.checkMail(s)), null, 'messages are not at their limit');
  assert.equal(sync(f.limits.checkRcpt(s)), null);
  assert.equal(sync(f.limits.checkRcpt(s)), null);
  const third = sync(f.limits.checkRcpt(s));
  assert.equal(third?.code, 451);
  assert.match(third!.message, /^4\.7\.1 Sending limit reached \(5 recipients per hour\)/);
  f.limits.accepted(s.id);
  const st = f.limits.status();
  assert.deepEqual(
    st.users.map((u) => [u.name, u.messages, u.recipients, u.overLimit]),
    [['john.smith', 2, 5, true]],
  );
});

test('only accepted messages count: a released transaction gives its reservation back', (t) => {
  const f = setup(t, { 'smtp.sendLimit.messagesPerHour': 1 });
  const s = subject('s1', 'john.smith', '198.51.100.9');
  assert.equal(sync(f.limits.checkMail(s)), null);
  assert.equal(sync(f.limits.checkRcpt(s)), null);
  f.limits.release(s.id); // DATA refused, RSET and a new MAIL, or the client went away
  assert.equal(f.limits.status({ all: true }).users.length, 0);
  assert.equal(send(f.limits, s), null);
  assert.ok(send(f.limits, s));
});

test('concurrent sessions of one user cannot overshoot: a reservation counts until it is released', (t) => {
  const f = setup(t, { 'smtp.sendLimit.messagesPerHour': 2 });
  const a = subject('a', 'john.smith', '198.51.100.9');
  const b = subject('b', 'john.smith', '198.51.100.9');
  const c = subject('c', 'john.smith', '198.51.100.9');
  assert.equal(sync(f.limits.checkMail(a)), null);
  assert.equal(sync(f.limits.checkMail(b)), null);
  assert.equal(sync(f.limits.checkMail(c))?.code, 451, 'two messages are under way');
  f.limits.release(b.id);
  assert.equal(sync(f.limits.checkMail(c)), null);
  f.limits.accepted(a.id);
  f.limits.accepted(c.id);
  assert.equal(sync(f.limits.checkMail(b))?.code, 451);
});

test('per address: many accounts from one address stop at its limit; trusted and relay-from networks are exempt', (t) => {
  const f = setup(t, { 'smtp.sendLimit.ipMessagesPerHour': 3, 'smtp.trustedNetworks': ['10.0.0.0/8'], 'smtp.relayFrom': ['192.0.2.50'] });
  for (const u of ['u1', 'u2', 'u3']) assert.equal(send(f.limits, subject(u, u, '203.0.113.5')), null);
  const refused = send(f.limits, subject('u4', 'u4', '203.0.113.5'));
  assert.equal(refused?.code, 451);
  assert.match(refused!.message, /from this address/);
  assert.equal(f.limits.refusals.get('ip_messages'), 1);
  // IPv6 clients of one /64 share a count.
  for (const [i, ip] of ['2001:db8:1:2::10', '2001:db8:1:2::11', '2001:db8:1:2:ffff::1'].entries()) {
    assert.equal(send(f.limits, subject(`v${i}`, `v${i}`, ip)), null);
  }
  assert.equal(send(f.limits, subject('v9', 'v9', '2001:db8:1:2::99'))?.code, 451);
  assert.equal(send(f.limits, subject('w', 'w', '2001:db8:1:3::1')), null, 'another /64');
  for (let i = 0; i < 5; i++) assert.equal(send(f.limits, subject(`t${i}`, `t${i}`, '10.1.2.3')), null, 'trusted network');
  for (let i = 0; i < 5; i++) assert.equal(send(f.limits, subject(`r${i}`, `r${i}`, '192.0.2.50')), null, 'relay-from client');
  assert.ok(!f.limits.status({ all: true }).ips.some((u) => u.name === '10.1.2.3' || u.name === '192.0.2.50'));
});

test('the user limit applies inside the trusted network too; unauthenticated sessions are not counted', (t) => {
  const f = setup(t, { 'smtp.sendLimit.messagesPerHour': 2, 'smtp.trustedNetworks': ['10.0.0.0/8'] });
  const s = subject('s', 'john.smith', '10.1.2.3');
  assert.equal(send(f.limits, s), null);
  assert.equal(send(f.limits, s), null);
  assert.equal(send(f.limits, s)?.code, 451);
  for (let i = 0; i < 10; i++) assert.equal(send(f.limits, subject(`anon${i}`, undefined, '198.51.100.1')), null);
  assert.equal(f.limits.status({ all: true }).users.length, 1);
});

test('a per-user override (settings users table, migration 004) wins over the default; 0 means no limit', (t) => {
  const f = setup(t, { 'smtp.sendLimit.messagesPerHour': 2 });
  f.settings.setUser('Newsletter', { sendLimitMessages: 5 });
  f.settings.setUser('ceo', { sendLimitMessages: 0 });
  assert.equal(f.settings.effectiveUser('newsletter').sendLimitMessages, 5);
  assert.equal(f.settings.effectiveUser('newsletter').sendLimitMessagesCustom, true);
  assert.equal(f.settings.effectiveUser('newsletter').sendLimitRecipients, 2000);
  const n = subject('n', 'newsletter', '198.51.100.9');
  for (let i = 0; i < 5; i++) assert.equal(send(f.limits, n), null);
  assert.equal(send(f.limits, n)?.code, 451);
  const ceo = subject('c', 'ceo', '198.51.100.8');
  for (let i = 0; i < 20; i++) assert.equal(send(f.limits, ceo), null);
  const usage = f.limits.status().users.find((u) => u.name === 'newsletter');
  assert.equal(usage?.custom, true);
  assert.equal(usage?.messageLimit, 5);
  // Back to the default: the row goes when nothing custom is left.
  f.settings.setUser('newsletter', { sendLimitMessages: null });
  assert.equal(f.settings.getUser('newsletter'), null);
});

test('one alert line per user and window, not one per refused message', (t) => {
  const f = setup(t, { 'smtp.sendLimit.messagesPerHour': 2 });
  const s = subject('s', 'john.smith', '198.51.100.9', createLogger('silent'));
  const { log, lines } = logLines();
  s.log = log;
  send(f.limits, s);
  send(f.limits, s);
  for (let i = 0; i < 50; i++) assert.equal(send(f.limits, s)?.code, 451);
  const alerts = () => lines.filter((l) => l.event === 'send-limit');
  assert.equal(alerts().length, 1);
  assert.equal(alerts()[0].level, 40, 'warn');
  assert.equal(alerts()[0].user, 'john.smith');
  assert.equal(alerts()[0].reason, 'user_messages');
  assert.equal(f.limits.refusals.get('user_messages'), 50);
  assert.deepEqual(
    f.limits.status().alerts.map((a) => [a.name, a.reason, a.count, a.limit]),
    [['john.smith', 'user_messages', 2, 2]],
  );
  // An hour later the user is still hammering: a new alert.
  f.clock.ms += 30 * MIN;
  send(f.limits, s);
  assert.equal(alerts().length, 1);
  f.clock.ms += 30 * MIN;
  send(f.limits, s);
  send(f.limits, s);
  send(f.limits, s);
  assert.equal(alerts().length, 2);
});

test('counters survive a restart (limits.db); a reset lets the user send again', (t) => {
  const f = setup(t, { 'smtp.sendLimit.messagesPerHour': 3 });
  const s = subject('s', 'john.smith', '198.51.100.9');
  send(f.limits, s);
  send(f.limits, s);
  f.clock.ms += 5 * MIN;
  send(f.limits, s);
  assert.ok(existsSync(join(f.dir, LIMITS_DB_FILE)));
  const again = f.reopen();
  assert.equal(sync(again.checkMail(s))?.code, 451, 'the three messages are remembered');
  const u = again.status().users[0];
  assert.deepEqual([u.name, u.messages, u.overLimit], ['john.smith', 3, true]);
  assert.equal(again.reset('user', 'John.Smith'), true);
  assert.equal(send(again, s), null);
  // The reset is written too: after another restart only the one new message counts.
  const third = f.reopen();
  assert.equal(third.status({ all: true }).users[0].messages, 1);
});

test('counters are written in batches by a timer, not per message', async (t) => {
  const f = setup(t);
  const saves: number[] = [];
  const dir = f.dir;
  const store = SqliteCounterStore.open(join(dir, 'other'));
  const counting = { load: store.load.bind(store), close: store.close.bind(store), save: (rows: Parameters<typeof store.save>[0], d: number) => (saves.push(rows.length), store.save(rows, d)) };
  const { log } = logLines();
  const l = new SendLimits({ settings: f.settings, log, store: counting, flushMs: 20 });
  t.after(() => l.close());
  for (let i = 0; i < 100; i++) send(l, subject(`s${i}`, `user${i % 10}`, '198.51.100.9'));
  assert.deepEqual(saves, [], 'nothing written synchronously');
  const deadline = Date.now() + 10_000;
  while (saves.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  assert.equal(saves.length, 1, 'one write for the 100 messages');
  assert.ok(saves[0] >= 11 && saves[0] <= 22, `${saves[0]} rows: one per key and minute`);
});
