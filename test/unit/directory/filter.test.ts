import { test } from 'node:test';
import assert from 'node:assert/strict';
import { and, eq, escapeFilterValue, inChain } from '../../../src/directory/ldap/filter.ts';

test('RFC 4515 escapes *, (, ), \\ and NUL so a login cannot widen a filter', () => {
  assert.equal(escapeFilterValue('*'), '\\2a');
  assert.equal(escapeFilterValue('a)(|(x=*'), 'a\\29\\28|\\28x=\\2a');
  assert.equal(escapeFilterValue('back\\slash'), 'back\\5cslash');
  assert.equal(escapeFilterValue('nul\0'), 'nul\\00');
  assert.equal(eq('sAMAccountName', 'john*'), '(sAMAccountName=john\\2a)');
});

test('non-ASCII values are escaped byte by byte as UTF-8', () => {
  assert.equal(escapeFilterValue('Lučić'), 'Lu\\c4\\8di\\c4\\87');
});

test('a DN with parentheses and commas is safe inside an in-chain filter', () => {
  const f = and('(objectClass=user)', inChain('memberOf', 'CN=Sales (Italy),OU=Groups,DC=corp,DC=example'));
  assert.equal(f, '(&(objectClass=user)(memberOf:1.2.840.113556.1.4.1941:=CN=Sales \\28Italy\\29,OU=Groups,DC=corp,DC=example))');
});
