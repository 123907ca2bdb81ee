import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LdifDirectory } from '../../../src/directory/ldif/ldif-directory.ts';
import { parseLdif } from '../../../src/directory/ldif/parse.ts';
import { group, user } from '../../helpers/ldif.ts';

const B = 'DC=corp,DC=example';
const text = [
  'version: 1',
  '# a comment',
  user(`CN=Ann,OU=Staff,${B}`, { sAMAccountName: 'Ann', mail: 'ann@example.com', userAccountControl: '512' }, 'pw-ann'),
  user(`CN=Bob,OU=Staff,${B}`, { sAMAccountName: 'bob', mail: 'bob@example.com', proxyAddresses: 'SMTP:robert@example.com', userAccountControl: '512' }, 'pw-bob'),
  user(`CN=Old,OU=Staff,${B}`, { sAMAccountName: 'old', mail: 'old@example.com', userAccountControl: '514' }, 'pw-old'),
  group(`CN=Inner,OU=Groups,${B}`, { sAMAccountName: 'Inner', mail: 'inner@example.com', member: [`CN=Bob,OU=Staff,${B}`, `CN=Old,OU=Staff,${B}`, `CN=Outer,OU=Groups,${B}`] }),
  group(`CN=Outer,OU=Groups,${B}`, { sAMAccountName: 'Outer', mail: 'outer@example.com', member: [`CN=Ann,OU=Staff,${B}`, `CN=Inner,OU=Groups,${B}`, `CN=Bob,OU=Staff,${B}`] }),
].join('\n\n');

const dir = new LdifDirectory(parseLdif(text), 'inline', { userPrincipalNameIsAddress: true });

test('LDIF parser unfolds continuation lines and decodes base64', () => {
  const [e] = parseLdif('dn: CN=x,DC=a\ndescription: long\n  value\ncn:: w6k=\n');
  assert.deepEqual(e.attrs['description'], ['long value']);
  assert.deepEqual(e.attrs['cn'], ['é']);
});

test('finds users by any address and logins case-insensitively', async () => {
  assert.equal((await dir.findAddress('ROBERT@example.com'))?.dn, `CN=Bob,OU=Staff,${B}`);
  assert.equal((await dir.findLogin('ANN'))?.login, 'Ann');
  assert.equal((await dir.findLogin('robert@example.com'))?.login, 'bob');
  assert.equal(await dir.findLogin('*'), null);
  assert.equal(await dir.findAddress('nobody@example.com'), null);
});

test('nested membership is expanded once, even through a cycle', async () => {
  const outer = await dir.findGroup('OUTER');
  assert.ok(outer);
  const members = (await dir.members(outer)).map((u) => u.login).sort();
  assert.deepEqual(members, ['Ann', 'bob', 'old']);
  const bob = (await dir.findLogin('bob'))!;
  assert.deepEqual((await dir.groupsOf(bob)).map((g) => g.name).sort(), ['Inner', 'Outer']);
  assert.deepEqual(bob.memberOf.sort(), [`CN=Inner,OU=Groups,${B}`, `CN=Outer,OU=Groups,${B}`]);
});

test('passwords are checked against unicodePwd; empty is refused', async () => {
  const ann = (await dir.findLogin('ann'))!;
  assert.equal(await dir.verifyPassword(ann, 'pw-ann'), 'ok');
  assert.equal(await dir.verifyPassword(ann, 'pw-bob'), 'invalid');
  assert.equal(await dir.verifyPassword(ann, ''), 'invalid');
});

test("a user's own memberOf and the groups that list it as member both count, as in AD", async () => {
  // corp.ldif's admin is in Domain Admins only through memberOf (a builtin group the export does not carry) and in
  // ITStaff through the group's member list: both memberships are kept, each once.
  const ldif = [
    'version: 1',
    user(`CN=Adm,OU=Staff,${B}`, { sAMAccountName: 'adm', mail: 'adm@example.com', userAccountControl: '512', memberOf: [`CN=Domain Admins,CN=Users,${B}`, `CN=IT,OU=Groups,${B}`] }, 'pw'),
    group(`CN=IT,OU=Groups,${B}`, { sAMAccountName: 'IT', member: [`CN=Adm,OU=Staff,${B}`] }),
  ].join('\n\n');
  const d = new LdifDirectory(parseLdif(ldif), 'inline', { userPrincipalNameIsAddress: true });
  const adm = (await d.findLogin('adm'))!;
  assert.deepEqual(adm.memberOf.sort(), [`CN=Domain Admins,CN=Users,${B}`, `CN=IT,OU=Groups,${B}`]);
});
