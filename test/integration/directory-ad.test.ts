/**
 * The directory, resolver and authenticator against a real Samba AD DC loaded with fixtures/ad/corp.ldif, driven
 * through the admin CLI exactly as an admin would (`postern directory lookup`, `postern auth test`).
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { adDirectory, haveAd, runCli, spawnCli, writeConfig } from '../helpers/cli.ts';

const skip = haveAd('AD') ? false : 'needs the Samba DCs: run through test/run.ts';

interface Lookup {
  address: string;
  result: string;
  login?: string;
  members?: string[];
  reason?: string;
  localNetworkOnly: boolean;
  group?: string;
}

describe('Active Directory (CORP.EXAMPLE on Samba) through the CLI', { skip }, () => {
  let config: string;
  const lookup = async (address: string, cfg = config): Promise<{ code: number; json: Lookup }> => {
    const r = await runCli(['directory', 'lookup', address, '--json'], { config: cfg });
    return { code: r.code, json: JSON.parse(r.out) as Lookup };
  };
  const authTest = (login: string, password: string, cfg = config) => runCli(['auth', 'test', login], { config: cfg, stdin: password + '\n' });

  before(async () => {
    config = writeConfig({ directory: adDirectory('AD'), auth: { masterLogin: 'admin' } }).file;
    for (const d of ['example.com', 'example.org', 'corp.example']) {
      assert.equal((await runCli(['domain', 'add', d], { config })).code, 0);
    }
  });

  const mailboxes: [string, string][] = [
    ['john@example.com', 'john.smith'], // mail
    ['js@example.com', 'john.smith'], // otherMailbox smtp:
    ['john.smith@example.com', 'john.smith'], // SMTP: primary
    ['J.Smith@Example.COM', 'john.smith'], // smtp: alias, any case
    ['john.smith@corp.example', 'john.smith'], // userPrincipalName (suffix differs from the mail domain)
    ['anna@example.com', 'anna.bianchi'], // UPN equal to mail
    ['a.bianchi@example.org', 'anna.bianchi'], // second mail domain
    ['m.rossi@example.com', 'mario.rossi'], // "Smtp:" odd-case prefix
    ['carla@example.com', 'Carla.Fermi'], // mixed-case login
    ['giulia.gallo@example.com', 'giulia.gallo'], // DN with an escaped comma
    ['newhire@example.com', 'new.hire'], // must-change receives mail
    ['locked@example.com', 'locked.user'], // locked receives mail
  ];
  for (const [address, login] of mailboxes) {
    it(`${address} is the mailbox of ${login}`, async () => {
      const { code, json } = await lookup(address);
      assert.equal(code, 0);
      assert.equal(json.result, 'mailbox');
      assert.equal(json.login, login);
      assert.equal(json.localNetworkOnly, false);
    });
  }

  it('disabled and expired accounts receive no mail (invalid/disabled, exit 1)', async () => {
    for (const address of ['old@example.com', 'contractor@example.com']) {
      const { code, json } = await lookup(address);
      assert.deepEqual([code, json.result, json.reason], [1, 'invalid', 'disabled'], address);
    }
  });

  it('X500: and sip: proxyAddresses are not mail addresses', async () => {
    const { code, json } = await lookup('jsmith@example.com');
    assert.deepEqual([code, json.result], [1, 'invalid']);
  });

  it('unknown, wildcard and injection addresses are invalid; other domains are external', async () => {
    for (const address of ['nobody@example.com', '*@example.com', 'j*@example.com', 'john)(mail=*@example.com']) {
      const { code, json } = await lookup(address);
      assert.equal(code, 1, address);
      assert.equal(json.result, 'invalid', address);
    }
    const ext = await lookup('someone@elsewhere.example');
    assert.deepEqual([ext.code, ext.json.result], [1, 'external']);
  });

  it('distribution lists expand nested groups, each member once, disabled members skipped, any case', async () => {
    const sales = await lookup('SALES@example.com');
    assert.equal(sales.json.result, 'list');
    assert.deepEqual(sales.json.members, ['john.smith', 'laura.verdi', 'mario.rossi']);
    const all = await lookup('all@example.com');
    assert.deepEqual(all.json.members, ['admin', 'giulia.gallo', 'it.tech', 'john.smith', 'laura.verdi', 'mario.rossi', 'paolo.neri']);
    const helpdesk = await lookup('helpdesk@example.com');
    assert.deepEqual([helpdesk.json.result, helpdesk.json.members], ['list', ['giulia.gallo', 'paolo.neri']]);
  });

  it('a group without mail is not an address', async () => {
    assert.equal((await lookup('spamtrainers@example.com')).json.result, 'invalid');
  });

  it('groupDelivery: shared makes mail-enabled groups shared folders', async () => {
    const cfg = writeConfig({ directory: adDirectory('AD', { groupDelivery: 'shared' }) }).file;
    await runCli(['domain', 'add', 'example.com'], { config: cfg });
    const { code, json } = await lookup('support@example.com', cfg);
    assert.deepEqual([code, json.result, json.group, json.members], [0, 'shared', 'support', ['giulia.gallo', 'paolo.neri']]);
  });

  it('userPrincipalNameIsAddress: false drops the UPN as an address', async () => {
    const cfg = writeConfig({ directory: adDirectory('AD', { userPrincipalNameIsAddress: false }) }).file;
    await runCli(['domain', 'add', 'corp.example'], { config: cfg });
    await runCli(['domain', 'add', 'example.com'], { config: cfg });
    assert.equal((await lookup('john.smith@corp.example', cfg)).json.result, 'invalid');
    assert.equal((await lookup('anna@example.com', cfg)).json.result, 'mailbox', 'still found through mail');
  });

  it('pseudonyms (email addresses of the seed) point at AD users and groups, local-network-only flagged', async () => {
    assert.equal((await runCli(['address', 'add', 'info', '--group', 'sales'], { config })).code, 0);
    assert.equal((await runCli(['address', 'add', 'ceo@example.com', '--user', 'JOHN.SMITH', '--local-network-only'], { config })).code, 0);
    const info = await lookup('info@example.org');
    assert.deepEqual([info.json.result, info.json.members?.length], ['list', 3]);
    const ceo = await lookup('ceo@example.com');
    assert.deepEqual([ceo.json.result, ceo.json.login, ceo.json.localNetworkOnly], ['mailbox', 'john.smith', true]);
    const outside = await runCli(['directory', 'lookup', 'ceo@example.com', '--json', '--from-outside'], { config });
    assert.equal(JSON.parse(outside.out).reason, 'local-network-only');
  });

  it('auth test: the right password, any case of the login, also by UPN', async () => {
    for (const login of ['john.smith', 'JOHN.SMITH', 'carla.fermi', 'anna@example.com']) {
      const r = await authTest(login, login === 'admin' ? 'Adm1n!Secret' : 'Corp!Passw0rd');
      assert.equal(r.code, 0, `${login}: ${r.out}`);
      assert.match(r.out, /^ok: /);
    }
  });

  it('auth test: wrong, empty and wildcard credentials are invalid (exit 1)', async () => {
    for (const [login, pw] of [['john.smith', 'wrong'], ['john.smith', ''], ['*', 'Corp!Passw0rd'], ['john*', 'Corp!Passw0rd'], ['nobody', 'x']]) {
      const r = await authTest(login, pw);
      assert.equal(r.code, 1, `${login}/${pw}: ${r.out}`);
      assert.match(r.out, /^invalid/);
    }
  });

  it('auth test: disabled, expired, locked and must-change accounts are refused with the reason', async () => {
    const cases: [string, string][] = [['old.employee', 'disabled'], ['contractor', 'expired'], ['locked.user', 'locked'], ['new.hire', 'must-change-password']];
    for (const [login, reason] of cases) {
      const r = await authTest(login, 'Corp!Passw0rd');
      assert.equal(r.code, 1, r.out);
      assert.match(r.out, new RegExp(`^disabled: .*\\(${reason}\\)`));
    }
  });

  it('master user: off by default, then john.smith*admin opens john with the admin password', async () => {
    assert.equal((await authTest('john.smith*admin', 'Adm1n!Secret')).code, 1);
    await runCli(['settings', 'set', 'mailbox.masterUser', 'yes'], { config });
    try {
      const r = await authTest('john.smith*admin', 'Adm1n!Secret');
      assert.equal(r.code, 0, r.out);
      assert.equal(r.out, 'ok: master admin as user john.smith');
      assert.equal((await authTest('admin*admin', 'Adm1n!Secret')).code, 1, 'the master cannot log in as itself');
      assert.equal((await authTest('old.employee*admin', 'Adm1n!Secret')).code, 1, 'the target must be enabled');
      assert.equal((await authTest('john.smith*admin', 'Corp!Passw0rd')).code, 1, "the target's own password is not the master's");
    } finally {
      await runCli(['settings', 'set', 'mailbox.masterUser', 'no'], { config });
    }
  });

  it('Kerberos authentication against the DC KDC', async () => {
    process.env.KRB5_CONFIG = process.env.POSTERN_TEST_KRB5_CONF;
    const cfg = writeConfig({ directory: adDirectory('AD'), auth: { method: 'kerberos', realm: process.env.POSTERN_TEST_AD_REALM } }).file;
    assert.equal((await authTest('john.smith', 'Corp!Passw0rd', cfg)).code, 0);
    assert.equal((await authTest('Carla.Fermi', 'Corp!Passw0rd', cfg)).code, 0);
    assert.equal((await authTest('john.smith', 'wrong', cfg)).code, 1);
    assert.equal((await authTest('john.smith', '', cfg)).code, 1);
    assert.equal((await authTest('old.employee', 'Corp!Passw0rd', cfg)).code, 1);
  });

  it('StartTLS on ldap:// works; without TLS the DC refuses the bind and the answer is temporary (75), not invalid', async () => {
    const ldapUrl = process.env.POSTERN_TEST_AD_LDAP_URL!;
    const tlsCfg = writeConfig({ directory: adDirectory('AD', { urls: [ldapUrl], startTls: true }) }).file;
    await runCli(['domain', 'add', 'example.com'], { config: tlsCfg });
    assert.equal((await lookup('john@example.com', tlsCfg)).code, 0);
    const plainCfg = writeConfig({ directory: adDirectory('AD', { urls: [ldapUrl], startTls: false }) }).file;
    await runCli(['domain', 'add', 'example.com'], { config: plainCfg });
    const r = await runCli(['directory', 'lookup', 'john@example.com', '--json'], { config: plainCfg });
    assert.equal(r.code, 75);
    assert.equal(JSON.parse(r.out).result, 'tempfail');
  });

  it('fails over to the next DC when the first does not answer', async () => {
    const cfg = writeConfig({ directory: adDirectory('AD', { urls: ['ldaps://127.0.0.1:1', process.env.POSTERN_TEST_AD_URL] }) }).file;
    await runCli(['domain', 'add', 'example.com'], { config: cfg });
    const { code, json } = await lookup('john@example.com', cfg);
    assert.deepEqual([code, json.login], [0, 'john.smith']);
  });

  it('npx postern works as a real process', async () => {
    const r = await spawnCli(['directory', 'lookup', 'sales@example.com'], { config, env: { POSTERN_LOG_LEVEL: 'silent' } });
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out, 'sales@example.com: distribution list Sales: john.smith, laura.verdi, mario.rossi');
  });
});
