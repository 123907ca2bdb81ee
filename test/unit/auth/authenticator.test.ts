import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Authenticator } from '../../../src/auth/authenticator.ts';
import { FailureDelay } from '../../../src/auth/failure-delay.ts';
import { authSchema } from '../../../src/config/schema.ts';
import { LdifDirectory } from '../../../src/directory/ldif/ldif-directory.ts';
import { parseLdif } from '../../../src/directory/ldif/parse.ts';
import type { Directory } from '../../../src/directory/types.ts';
import { TempFailure } from '../../../src/lib/errors.ts';
import { silentLogger } from '../../../src/lib/logger.ts';
import { user } from '../../helpers/ldif.ts';

const B = 'OU=Staff,DC=corp,DC=example';
const dir = new LdifDirectory(
  parseLdif(
    [
      user(`CN=John,${B}`, { sAMAccountName: 'john', mail: 'john@example.com', userAccountControl: '512' }, 'john-pw'),
      user(`CN=Admin,${B}`, { sAMAccountName: 'admin', mail: 'admin@example.com', userAccountControl: '512' }, 'admin-pw'),
      user(`CN=Old,${B}`, { sAMAccountName: 'old', userAccountControl: '514' }, 'old-pw'),
      user(`CN=Locked,${B}`, { sAMAccountName: 'locked', userAccountControl: '512', 'msDS-User-Account-Control-Computed': '16' }, 'locked-pw'),
      user(`CN=New,${B}`, { sAMAccountName: 'new', userAccountControl: '512', pwdLastSet: '0' }, 'new-pw'),
    ].join('\n\n'),
  ),
  'inline',
  { userPrincipalNameIsAddress: true },
);

function make(opts: { master?: boolean; directory?: Directory } = {}) {
  const waits: number[] = [];
  const delay = new FailureDelay({ baseMs: 2000, maxMs: 15000, sleep: async (ms) => void waits.push(ms) });
  const auth = new Authenticator({
    directory: opts.directory ?? dir,
    config: authSchema.parse({}),
    masterUserEnabled: () => opts.master ?? false,
    log: silentLogger,
    failureDelay: delay,
  });
  return { auth, waits };
}
const ctx = { client: '192.0.2.1', protocol: 'test' };

test('right password logs in, any case of the login', async () => {
  const { auth, waits } = make();
  const r = await auth.authenticate('JOHN', 'john-pw', ctx);
  assert.equal(r.status, 'ok');
  assert.deepEqual(waits, []);
});

test('empty password and wildcard logins are refused, after the delay', async () => {
  const { auth, waits } = make();
  assert.equal((await auth.authenticate('john', '', ctx)).status, 'invalid');
  assert.equal((await auth.authenticate('*', 'john-pw', ctx)).status, 'invalid');
  assert.equal((await auth.authenticate('jo*', 'john-pw', ctx)).status, 'invalid');
  assert.deepEqual(waits, [2000, 4000, 8000], 'the delay doubles per failure from the same address');
  await auth.authenticate('john', 'wrong', { ...ctx, client: '192.0.2.2' });
  assert.equal(waits.at(-1), 2000, 'another address starts at the base delay');
});

test('disabled, locked and must-change accounts cannot log in even with the right password', async () => {
  const { auth } = make();
  for (const [login, reason] of [['old', 'disabled'], ['locked', 'locked'], ['new', 'must-change-password']] as const) {
    const r = await auth.authenticate(login, `${login}-pw`, ctx);
    assert.equal(r.status, 'disabled');
    assert.equal(r.status === 'disabled' && r.reason, reason);
  }
});

test('master user: off by default; when on, admin opens john with its own password but not itself', async () => {
  assert.equal((await make().auth.authenticate('john*admin', 'admin-pw', ctx)).status, 'invalid');
  const { auth } = make({ master: true });
  const r = await auth.authenticate('john*admin', 'admin-pw', ctx);
  assert.equal(r.status, 'ok');
  assert.equal(r.status === 'ok' && r.user.login, 'john');
  assert.equal(r.status === 'ok' && r.master?.login, 'admin');
  assert.equal((await auth.authenticate('john*admin', 'john-pw', ctx)).status, 'invalid');
  assert.equal((await auth.authenticate('admin*admin', 'admin-pw', ctx)).status, 'invalid');
  assert.equal((await auth.authenticate('ghost*admin', 'admin-pw', ctx)).status, 'invalid');
  assert.equal((await auth.authenticate('old*admin', 'admin-pw', ctx)).status, 'disabled');
  assert.equal((await auth.authenticate('john*old', 'old-pw', ctx)).status, 'invalid', 'only the configured master account');
});

test('AD unreachable is a temporary failure, never a wrong password, and is not delayed', async () => {
  const down = { findLogin: async () => { throw new TempFailure('DC down'); } } as unknown as Directory;
  const { auth, waits } = make({ directory: down });
  const r = await auth.authenticate('john', 'john-pw', ctx);
  assert.equal(r.status, 'tempfail');
  assert.deepEqual(waits, []);
});

test('the real delay is at least 2 s by default', async () => {
  const auth = new Authenticator({ directory: dir, config: authSchema.parse({}), masterUserEnabled: () => false, log: silentLogger });
  const t0 = Date.now();
  assert.equal((await auth.authenticate('john', 'nope', ctx)).status, 'invalid');
  assert.ok(Date.now() - t0 >= 1990, `waited ${Date.now() - t0} ms`);
});
