/**
 * The GSSAPI login's AD rules (Authenticator.authenticateGssapi): which principal is which user, and who is refused
 * although the Kerberos exchange succeeded. The exchange itself is replaced by a fixed outcome here; it is tested
 * for real against the Samba KDC in test/integration/gssapi-ad.test.ts. The acceptor's own start-up checks (keytab
 * readable, no key for the service) run the real libgssapi.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Authenticator } from '../../../src/auth/authenticator.ts';
import { FailureDelay } from '../../../src/auth/failure-delay.ts';
import { GssapiAcceptor, SaslCancelled, type GssapiOutcome } from '../../../src/auth/gssapi.ts';
import { authSchema } from '../../../src/config/schema.ts';
import { LdifDirectory } from '../../../src/directory/ldif/ldif-directory.ts';
import { parseLdif } from '../../../src/directory/ldif/parse.ts';
import { silentLogger } from '../../../src/lib/logger.ts';
import { user } from '../../helpers/ldif.ts';

const B = 'OU=Staff,DC=corp,DC=example';
const dir = new LdifDirectory(
  parseLdif(
    [
      user(`CN=John,${B}`, { sAMAccountName: 'john', userPrincipalName: 'john.smith@corp.example', mail: 'john@example.com', userAccountControl: '512' }, 'john-pw'),
      user(`CN=Admin,${B}`, { sAMAccountName: 'admin', mail: 'admin@example.com', userAccountControl: '512' }, 'admin-pw'),
      user(`CN=Old,${B}`, { sAMAccountName: 'old', userAccountControl: '514' }, 'old-pw'),
      user(`CN=Locked,${B}`, { sAMAccountName: 'locked', userAccountControl: '512', 'msDS-User-Account-Control-Computed': '16' }, 'locked-pw'),
    ].join('\n\n'),
  ),
  'inline',
  { userPrincipalNameIsAddress: true },
);

const conv = { challenge: async () => Buffer.alloc(0) };
const ctx = { client: '192.0.2.7', protocol: 'imap' };

function make(outcome: GssapiOutcome | (() => never)) {
  const waits: number[] = [];
  const delay = new FailureDelay({ baseMs: 2000, maxMs: 15000, sleep: async (ms) => void waits.push(ms) });
  const acceptor = {
    available: () => true,
    accept: async () => (typeof outcome === 'function' ? outcome() : outcome),
  } as unknown as GssapiAcceptor;
  const auth = new Authenticator({
    directory: dir,
    config: authSchema.parse({ kerberos: { keytab: '/nonexistent', realm: 'CORP.EXAMPLE' } }),
    masterUserEnabled: () => true,
    log: silentLogger,
    failureDelay: delay,
    gssapi: acceptor,
  });
  return { auth, waits };
}

const ok = (principal: string, authzid = ''): GssapiOutcome => ({ status: 'ok', principal, authzid });

test('a principal of our realm logs in the user with that sAMAccountName, no failure delay', async () => {
  const { auth, waits } = make(ok('john@CORP.EXAMPLE'));
  const r = await auth.authenticateGssapi('imap', undefined, conv, ctx);
  assert.equal(r.status, 'ok');
  assert.equal(r.status === 'ok' && r.user.login, 'john');
  assert.deepEqual(waits, []);
});

test('the realm compares without case; the authorization identity may name the user itself', async () => {
  for (const authzid of ['', 'john', 'JOHN', 'john@CORP.EXAMPLE', 'john.smith@corp.example']) {
    const r = await make(ok('john@corp.example', authzid)).auth.authenticateGssapi('smtp', undefined, conv, ctx);
    assert.equal(r.status, 'ok', authzid);
  }
});

test('another realm, a service principal, an unknown name, a UPN-looking name: refused after the delay', async () => {
  for (const principal of ['john@OTHER.EXAMPLE', 'imap/mail.corp.example@CORP.EXAMPLE', 'nobody@CORP.EXAMPLE', 'john@corp.example@CORP.EXAMPLE', 'jo\\@hn@CORP.EXAMPLE', '*@CORP.EXAMPLE']) {
    const { auth, waits } = make(ok(principal));
    const r = await auth.authenticateGssapi('imap', undefined, conv, ctx);
    assert.equal(r.status, 'invalid', principal);
    assert.deepEqual(waits, [2000], principal);
  }
});

test('an authorization identity of another user is refused (acting as someone else is the master syntax)', async () => {
  const r = await make(ok('john@CORP.EXAMPLE', 'admin')).auth.authenticateGssapi('imap', undefined, conv, ctx);
  assert.equal(r.status, 'invalid');
});

test('disabled and locked accounts are refused although the ticket is valid', async () => {
  const old = await make(ok('old@CORP.EXAMPLE')).auth.authenticateGssapi('imap', undefined, conv, ctx);
  assert.equal(old.status, 'disabled');
  assert.equal(old.status === 'disabled' && old.reason, 'disabled');
  const locked = await make(ok('locked@CORP.EXAMPLE')).auth.authenticateGssapi('pop', undefined, conv, ctx);
  assert.equal(locked.status === 'disabled' && locked.reason, 'locked');
});

test('a failed exchange is a wrong password; an acceptor without keys is temporary; "*" is a cancel', async () => {
  const bad = make({ status: 'invalid', reason: 'GSS_Accept_sec_context: defective token' });
  assert.equal((await bad.auth.authenticateGssapi('imap', undefined, conv, ctx)).status, 'invalid');
  assert.deepEqual(bad.waits, [2000]);
  const temp = make({ status: 'tempfail', reason: 'no key' });
  assert.equal((await temp.auth.authenticateGssapi('imap', undefined, conv, ctx)).status, 'tempfail');
  assert.deepEqual(temp.waits, []);
  const cancelled = make(() => {
    throw new SaslCancelled();
  });
  assert.equal((await cancelled.auth.authenticateGssapi('imap', undefined, conv, ctx)).status, 'cancelled');
});

test('without auth.kerberos GSSAPI is neither configured nor available', () => {
  const auth = new Authenticator({ directory: dir, config: authSchema.parse({}), masterUserEnabled: () => false, log: silentLogger });
  assert.equal(auth.gssapiConfigured(), false);
  assert.equal(auth.gssapiAvailable(), false);
});

test('auth.kerberos needs a realm, its own or auth.realm', () => {
  assert.throws(() => authSchema.parse({ kerberos: { keytab: '/k' } }), /realm/);
  assert.equal(authSchema.parse({ realm: 'CORP.EXAMPLE', kerberos: { keytab: '/k' } }).kerberos?.keytab, '/k');
});

test('the real acceptor: offered only while the keytab is readable; no key for the service is a temporary failure', async () => {
  const work = mkdtempSync(join(tmpdir(), 'postern-gssapi-unit-'));
  const saved = { KRB5_KTNAME: process.env.KRB5_KTNAME };
  try {
    const keytab = join(work, 'postern.keytab');
    const acceptor = new GssapiAcceptor({ keytab, hostname: 'Mail.Corp.Example', log: silentLogger });
    assert.equal(process.env.KRB5_KTNAME, `FILE:${keytab}`);
    assert.equal(acceptor.serviceName('imap'), 'imap@mail.corp.example');
    assert.equal(acceptor.available(), false);
    // A keytab with only the version header (0x0502) and no entries: readable, but no key for imap/.
    writeFileSync(keytab, Buffer.from([0x05, 0x02]));
    assert.equal(acceptor.available(), true);
    let challenged = false;
    const r = await acceptor.accept('imap', Buffer.from('not a token'), { challenge: async () => ((challenged = true), Buffer.alloc(0)) });
    assert.equal(r.status, 'tempfail');
    assert.equal(challenged, false);
  } finally {
    if (saved.KRB5_KTNAME === undefined) delete process.env.KRB5_KTNAME;
    else process.env.KRB5_KTNAME = saved.KRB5_KTNAME;
    rmSync(work, { recursive: true, force: true });
  }
});
