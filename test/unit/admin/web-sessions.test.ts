/**
 * The web admin page's sessions (src/admin/web/sessions.ts): idle and absolute expiry, the idle clock restarted by
 * use, logout dropping the session, the CSRF token compared whole, and the Cookie header parsed as RFC 6265 says.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cookieValue, WebSessions } from '../../../src/admin/web/sessions.ts';

const MIN = 60_000;

function clock() {
  let now = 1_000_000;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

test('a session unused for the idle limit ends; each use restarts the idle clock', () => {
  const c = clock();
  const s = new WebSessions({ idleMs: 30 * MIN, maxMs: 8 * 60 * MIN, now: c.now });
  const a = s.create('admin');
  c.advance(29 * MIN);
  assert.equal(s.use(a.id)?.who, 'admin');
  c.advance(29 * MIN);
  assert.equal(s.use(a.id)?.who, 'admin', '58 minutes after login but 29 after the last use');
  c.advance(30 * MIN);
  assert.equal(s.use(a.id), undefined);
  assert.equal(s.use(a.id), undefined, 'an ended session does not come back');
});

test('however busy, a session ends at the absolute limit after its login', () => {
  const c = clock();
  const s = new WebSessions({ idleMs: 30 * MIN, maxMs: 60 * MIN, now: c.now });
  const a = s.create('admin');
  for (let i = 0; i < 5; i++) {
    c.advance(10 * MIN);
    assert.ok(s.use(a.id));
  }
  c.advance(10 * MIN);
  assert.equal(s.use(a.id), undefined);
});

test('logout drops the session server-side; ids and CSRF tokens are random and distinct', () => {
  const s = new WebSessions({ idleMs: MIN, maxMs: 10 * MIN });
  const a = s.create('admin');
  const b = s.create('token:ci');
  assert.notEqual(a.id, b.id);
  assert.notEqual(a.csrf, b.csrf);
  assert.ok(a.id.length >= 43 && a.csrf.length >= 43, '256-bit values');
  assert.equal(s.drop(a.id), true);
  assert.equal(s.use(a.id), undefined);
  assert.equal(s.use(b.id)?.who, 'token:ci');
  assert.equal(s.drop(a.id), false);
  assert.equal(s.use(undefined), undefined);
  assert.equal(s.use(''), undefined);
});

test('the CSRF check wants the session\'s own token, whole', () => {
  const s = new WebSessions({ idleMs: MIN, maxMs: 10 * MIN });
  const a = s.create('admin');
  const b = s.create('other');
  assert.equal(s.checkCsrf(a, a.csrf), true);
  assert.equal(s.checkCsrf(a, b.csrf), false, 'another session\'s token');
  assert.equal(s.checkCsrf(a, a.csrf.slice(0, -1)), false);
  assert.equal(s.checkCsrf(a, ''), false);
  assert.equal(s.checkCsrf(a, undefined), false);
  assert.equal(s.checkCsrf(a, [a.csrf, a.csrf]), false, 'a repeated header is not accepted');
});

test('expired sessions are swept when new ones are made', () => {
  const c = clock();
  const s = new WebSessions({ idleMs: MIN, maxMs: 10 * MIN, now: c.now });
  s.create('a');
  s.create('b');
  c.advance(2 * MIN);
  s.create('c');
  assert.equal(s.size, 1);
});

test('cookieValue reads one cookie of a Cookie header', () => {
  assert.equal(cookieValue('a=1; __Host-postern-session=abc_DEF-1; b=2', '__Host-postern-session'), 'abc_DEF-1');
  assert.equal(cookieValue('x__Host-postern-session=evil', '__Host-postern-session'), undefined);
  assert.equal(cookieValue('s="quoted"', 's'), 'quoted');
  assert.equal(cookieValue(undefined, 's'), undefined);
  assert.equal(cookieValue('novalue; s', 's'), undefined);
});
