/**
 * "Pointed by config at another AD it has never seen": ACME.TEST (fixtures/ad/other.ldif) has other OUs, another
 * mail domain, logins of another shape. Then the DC is stopped mid-run: lookups and logins must answer "temporary
 * failure" (exit 75), never "invalid". This file is the only one that stops AD2.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { controlTestDc } from '../harness/samba.ts';
import { adDirectory, haveAd, runCli, spawnCli, writeConfig } from '../helpers/cli.ts';

const skip = haveAd('AD2') ? false : 'needs the Samba DCs: run through test/run.ts';

describe('another Active Directory (ACME.TEST), and the DC going away', { skip }, () => {
  let config: string;
  const lookup = async (address: string) => {
    const r = await runCli(['directory', 'lookup', address, '--json'], { config });
    return { code: r.code, json: JSON.parse(r.out) as Record<string, unknown> };
  };
  const authTest = (login: string, password: string) => runCli(['auth', 'test', login], { config, stdin: password });

  before(async () => {
    config = writeConfig({ directory: adDirectory('AD2') }).file;
    await runCli(['domain', 'add', 'acme.io'], { config });
    await runCli(['domain', 'add', 'acme.test'], { config });
  });
  after(() => controlTestDc('start'));

  it('maps every address source of an unseen domain', async () => {
    const cases: [string, string][] = [
      ['alice@acme.io', 'awong'],
      ['a.wong@acme.io', 'awong'],
      ['bob@acme.io', 'BJones'], // proxyAddresses only, no mail attribute
      ['Bob.Jones@acme.io', 'BJones'],
      ['bjones@acme.test', 'BJones'], // UPN in the AD domain
      ['chen@acme.io', 'cli'],
      ['eve@acme.io', 'eadams'],
    ];
    for (const [address, login] of cases) {
      const { code, json } = await lookup(address);
      assert.deepEqual([code, json.result, json.login], [0, 'mailbox', login], address);
    }
    assert.deepEqual(Object.values(await lookup('dave@acme.io')).map((v) => (typeof v === 'object' ? (v as { reason: string }).reason : v)), [1, 'disabled']);
  });

  it('nested list with a mixed-case name, disabled member skipped', async () => {
    for (const address of ['allhands@acme.io', 'STAFF@acme.io']) {
      const { code, json } = await lookup(address);
      assert.deepEqual([code, json.result, json.members], [0, 'list', ['awong', 'BJones', 'cli', 'eadams']], address);
    }
    assert.deepEqual((await lookup('eng@acme.io')).json.members, ['awong', 'cli']);
  });

  it('auth test on the unseen domain', async () => {
    assert.equal((await authTest('bjones', 'Acme!Passw0rd')).code, 0);
    assert.equal((await authTest('awong', 'nope')).code, 1);
    assert.match((await authTest('dmiller', 'Acme!Passw0rd')).out, /^disabled: .*\(disabled\)/);
  });

  it('a DC stopped mid-run gives exit 75 for lookups and logins, never "invalid"', async () => {
    await controlTestDc('stop');
    try {
      for (const address of ['alice@acme.io', 'nobody@acme.io']) {
        const r = await spawnCli(['directory', 'lookup', address, '--json'], { config, env: { POSTERN_LOG_LEVEL: 'silent' } });
        assert.equal(r.code, 75, `${address}: ${r.out} ${r.err}`);
        assert.equal(JSON.parse(r.out).result, 'tempfail');
      }
      const auth = await spawnCli(['auth', 'test', 'awong'], { config, stdin: 'Acme!Passw0rd', env: { POSTERN_LOG_LEVEL: 'silent' } });
      assert.equal(auth.code, 75, auth.out);
      assert.match(auth.out, /^temporary failure/);
    } finally {
      await controlTestDc('start');
    }
    assert.equal((await lookup('alice@acme.io')).code, 0, 'answers again once the DC is back');
  });
});
