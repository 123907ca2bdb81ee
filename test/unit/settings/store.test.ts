import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSettings, Settings } from '../../../src/settings/store.ts';
import { SettingsError } from '../../../src/settings/errors.ts';
import { SETTING_DEFS, SETTING_KEYS } from '../../../src/settings/keys.ts';
import { openSettingsDatabase } from '../../../src/settings/db.ts';
import { normalizeImapReferral } from '../../../src/settings/validate.ts';

function setup(t: { after(fn: () => void): void }): { dir: string; s: Settings } {
  const dir = mkdtempSync(join(tmpdir(), 'postern-settings-'));
  const s = openSettings(dir);
  t.after(() => {
    s.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { dir, s };
}

function code(c: SettingsError['code'], message?: RegExp) {
  return (err: unknown) => {
    assert.ok(err instanceof SettingsError, `expected SettingsError, got ${String(err)}`);
    assert.equal(err.code, c);
    if (message) assert.match(err.message, message);
    return true;
  };
}

// ---- domains ------------------------------------------------------------------------------------------------------

test('domains: add, get, list, update, remove; names are lower-case', (t) => {
  const { s } = setup(t);
  assert.deepEqual(s.addDomain({ name: 'Corp.Example.', type: 'local', bcc: 'Archive@Corp.Example' }), {
    name: 'corp.example',
    type: 'local',
    nexthop: null,
    bcc: 'archive@corp.example',
    disclaimer: null,
    imapReferral: null,
  });
  s.addDomain({ name: 'partner.example', type: 'relay', nexthop: 'MX.Partner.Example:2525', disclaimer: 'Be *nice*.\r\n' });
  s.addDomain({ name: 'b.example', type: 'local' });

  assert.equal(s.getDomain('CORP.EXAMPLE')?.name, 'corp.example');
  assert.equal(s.getDomain('nope.example'), null);
  assert.equal(s.getDomain('not a domain'), null);
  assert.deepEqual(s.listDomains().map((d) => d.name), ['b.example', 'corp.example', 'partner.example']);
  const relay = s.getDomain('partner.example')!;
  assert.equal(relay.nexthop, 'mx.partner.example:2525');
  assert.equal(relay.disclaimer, 'Be *nice*.\n');
  assert.equal(s.isLocalDomain('corp.example'), true);
  assert.equal(s.isLocalDomain('partner.example'), false);

  assert.equal(s.updateDomain('corp.example', { bcc: null, disclaimer: 'Legal text' }).bcc, null);
  assert.equal(s.getDomain('corp.example')!.disclaimer, 'Legal text');
  assert.equal(s.updateDomain('corp.example', { disclaimer: null }).disclaimer, null);
  // relay → local drops the next hop; local → relay needs one.
  assert.deepEqual(s.updateDomain('partner.example', { type: 'local' }).nexthop, null);
  assert.throws(() => s.updateDomain('partner.example', { type: 'relay' }), code('invalid', /next hop/));
  assert.equal(s.updateDomain('partner.example', { type: 'relay', nexthop: '[10.0.0.5]:25' }).nexthop, '10.0.0.5:25');

  assert.equal(s.removeDomain('B.example').domain.name, 'b.example');
  assert.equal(s.getDomain('b.example'), null);
  assert.throws(() => s.removeDomain('b.example'), code('not-found'));
  assert.throws(() => s.updateDomain('b.example', { bcc: null }), code('not-found'));
});

test('domains: validation and duplicates', (t) => {
  const { s } = setup(t);
  s.addDomain({ name: 'corp.example', type: 'local' });
  assert.throws(() => s.addDomain({ name: 'CORP.example', type: 'local' }), code('exists', /corp\.example already exists/));
  for (const bad of ['', 'localhost', 'bad_name.example', '-x.example', 'a..example', '10.0.0.1', 'x'.repeat(64) + '.example']) {
    assert.throws(() => s.addDomain({ name: bad, type: 'local' }), code('invalid'), bad);
  }
  assert.throws(() => s.addDomain({ name: 'r.example', type: 'relay' }), code('invalid', /needs a next hop/));
  assert.throws(() => s.addDomain({ name: 'r.example', type: 'relay', nexthop: 'host:99999' }), code('invalid', /port/));
  assert.throws(() => s.addDomain({ name: 'l.example', type: 'local', nexthop: 'host' }), code('invalid', /no next hop/));
  assert.throws(() => s.addDomain({ name: 'l.example', type: 'local', bcc: 'not-an-address' }), code('invalid', /local@domain/));
  assert.throws(() => s.addDomain({ name: 'l.example', type: 'nope' as 'local' }), code('invalid'));
  assert.throws(() => s.addDomain({ name: 'l.example', type: 'local', disclaimer: 'x'.repeat(70000) }), code('invalid', /too long/));
  // Internationalised names are stored in ASCII form.
  assert.equal(s.addDomain({ name: 'Bücher.example', type: 'local' }).name, 'xn--bcher-kva.example');
  assert.equal(s.getDomain('bücher.example')?.name, 'xn--bcher-kva.example');
  // Single-label next hops (an internal server) and IPv6 are fine.
  assert.equal(s.addDomain({ name: 'r.example', type: 'relay', nexthop: 'exchange01' }).nexthop, 'exchange01');
  assert.equal(s.addDomain({ name: 'r6.example', type: 'relay', nexthop: '[2001:DB8::1]:2525' }).nexthop, '[2001:db8::1]:2525');
});

test('removing a domain keeps its addresses, inactive until the domain is added back', (t) => {
  const { s } = setup(t);
  s.addDomain({ name: 'corp.example', type: 'local' });
  s.addPseudonym({ localPart: 'info', domains: ['corp.example'], target: { kind: 'user', name: 'ann' } });
  s.addPseudonym({ localPart: 'all', domains: 'all', target: { kind: 'group', name: 'staff' } });
  const removed = s.removeDomain('corp.example');
  assert.deepEqual(removed.inactiveAddresses.map((p) => p.address), ['info@corp.example']);
  assert.equal(s.findPseudonym('info@corp.example'), null);
  assert.equal(s.listPseudonyms().length, 2);
  s.addDomain({ name: 'corp.example', type: 'local' });
  assert.equal(s.findPseudonym('info@corp.example')?.target.name, 'ann');
});

test('normalizeImapReferral: imap://HOST[:PORT]/ only, normalised; user, AUTH, path, query and other schemes refused', () => {
  assert.equal(normalizeImapReferral('imap://Mail.Old.Example/'), 'imap://mail.old.example/');
  assert.equal(normalizeImapReferral(' IMAP://mail.old.example '), 'imap://mail.old.example/');
  assert.equal(normalizeImapReferral('imap://mail.old.example:1143/'), 'imap://mail.old.example:1143/');
  assert.equal(normalizeImapReferral('imap://192.0.2.7:143'), 'imap://192.0.2.7:143/');
  assert.equal(normalizeImapReferral('imap://[2001:db8::1]:993/'), 'imap://[2001:db8::1]:993/');
  for (const bad of [
    'mail.old.example',
    'imaps://mail.old.example/',
    'pop://mail.old.example/',
    'imap://',
    'imap:///',
    'imap://mail.old.example/INBOX',
    'imap://mail.old.example/?x=1',
    'imap://user@mail.old.example/',
    'imap://;AUTH=*@mail.old.example/',
    'imap://mail.old.example:0/',
    'imap://mail.old.example:70000/',
    'imap://mail_old!/',
  ]) {
    assert.throws(() => normalizeImapReferral(bad), code('invalid'), bad);
  }
});

test('domains: the IMAP referral is stored normalised, shown, changed, cleared with null or an empty string', (t) => {
  const { dir, s } = setup(t);
  const d = s.addDomain({ name: 'acme.io', type: 'relay', nexthop: 'mx.old.example', imapReferral: 'IMAP://Mail.Old.Example' });
  assert.equal(d.imapReferral, 'imap://mail.old.example/');
  assert.equal(s.addDomain({ name: 'corp.example', type: 'local' }).imapReferral, null);
  assert.equal(s.getDomain('ACME.io')?.imapReferral, 'imap://mail.old.example/');
  assert.throws(() => s.updateDomain('acme.io', { imapReferral: 'imap://x@mail.old.example/' }), code('invalid', /server only/));
  assert.throws(() => s.addDomain({ name: 'b.example', type: 'local', imapReferral: 'http://x.example/' }), code('invalid', /IMAP referral/));
  // Other changes keep it; a relay → local switch keeps it too (where the mailboxes are is not where mail goes).
  assert.equal(s.updateDomain('acme.io', { type: 'local', bcc: 'audit@corp.example' }).imapReferral, 'imap://mail.old.example/');
  assert.equal(s.updateDomain('acme.io', { imapReferral: 'imap://mail2.old.example:1143/' }).imapReferral, 'imap://mail2.old.example:1143/');
  // Survives a reopen (stored, not only in the snapshot).
  const again = openSettings(dir);
  t.after(() => again.close());
  assert.equal(again.getDomain('acme.io')?.imapReferral, 'imap://mail2.old.example:1143/');
  assert.equal(s.updateDomain('acme.io', { imapReferral: '' }).imapReferral, null);
  s.updateDomain('acme.io', { imapReferral: 'imap://mail.old.example/' });
  assert.equal(s.updateDomain('acme.io', { imapReferral: null }).imapReferral, null);
  assert.equal(s.getDomain('acme.io')?.imapReferral, null);
});

// ---- pseudonyms ---------------------------------------------------------------------------------------------------

test('pseudonyms: a specific-domain entry wins over an all-domains one; lookups are case-insensitive', (t) => {
  const { s } = setup(t);
  s.addDomain({ name: 'a.example', type: 'local' });
  s.addDomain({ name: 'b.example', type: 'local' });
  s.addDomain({ name: 'relay.example', type: 'relay', nexthop: 'mx.relay.example' });
  const all = s.addPseudonym({ localPart: 'Info', domains: 'all', target: { kind: 'group', name: 'Sales' } });
  assert.deepEqual(all, [
    { localPart: 'info', domain: null, address: 'info@*', target: { kind: 'group', name: 'Sales' }, localNetworkOnly: false },
  ]);
  s.addPseudonym({ localPart: 'info', domains: ['B.Example'], target: { kind: 'user', name: 'JSmith' }, localNetworkOnly: true });

  const onA = s.findPseudonym('INFO@A.example');
  assert.equal(onA?.target.kind, 'group');
  assert.equal(onA?.matchedAddress, 'info@a.example');
  const onB = s.findPseudonym('Info@b.EXAMPLE');
  assert.deepEqual(onB?.target, { kind: 'user', name: 'JSmith' });
  assert.equal(onB?.localNetworkOnly, true);
  assert.equal(onB?.domain, 'b.example');

  // Only configured local domains: not an unknown domain, not a relay domain.
  assert.equal(s.findPseudonym('info@unknown.example'), null);
  assert.equal(s.findPseudonym('info@relay.example'), null);
  assert.equal(s.findPseudonym('nobody@a.example'), null);
  assert.equal(s.findPseudonym('info'), null);
  assert.equal(s.findPseudonym('@a.example'), null);

  assert.deepEqual(s.listPseudonyms().map((p) => p.address), ['info@*', 'info@b.example']);
});

test('pseudonyms: several domains at once, all or nothing; duplicates refused', (t) => {
  const { s } = setup(t);
  s.addDomain({ name: 'a.example', type: 'local' });
  s.addDomain({ name: 'b.example', type: 'local' });
  s.addDomain({ name: 'relay.example', type: 'relay', nexthop: 'mx.relay.example' });
  const added = s.addPseudonym({ localPart: 'sales', domains: ['a.example', 'b.example', 'A.EXAMPLE'], target: { kind: 'group', name: 'sales' } });
  assert.deepEqual(added.map((p) => p.address), ['sales@a.example', 'sales@b.example']);

  assert.throws(
    () => s.addPseudonym({ localPart: 'SALES', domains: ['b.example'], target: { kind: 'user', name: 'x' } }),
    code('exists', /sales@b\.example already exists/),
  );
  assert.throws(
    () => s.addPseudonym({ localPart: 'help', domains: ['a.example', 'missing.example'], target: { kind: 'user', name: 'x' } }),
    code('invalid', /missing\.example is not configured/),
  );
  assert.equal(s.findPseudonym('help@a.example'), null, 'the first domain was rolled back');
  assert.throws(
    () => s.addPseudonym({ localPart: 'help', domains: ['relay.example'], target: { kind: 'user', name: 'x' } }),
    code('invalid', /relayed/),
  );
  assert.throws(() => s.addPseudonym({ localPart: 'help', domains: [], target: { kind: 'user', name: 'x' } }), code('invalid'));
  // An all-domains entry may exist next to specific ones.
  s.addPseudonym({ localPart: 'sales', domains: 'all', target: { kind: 'user', name: 'boss' } });
  assert.throws(() => s.addPseudonym({ localPart: 'sales', domains: 'all', target: { kind: 'user', name: 'boss' } }), code('exists', /sales@\*/));
});

test('pseudonyms: local parts and targets are validated', (t) => {
  const { s } = setup(t);
  s.addDomain({ name: 'a.example', type: 'local' });
  const target = { kind: 'user' as const, name: 'ann' };
  for (const bad of ['', 'a@b', 'a%b', 'a!b', '"quoted"', '.lead', 'trail.', 'dou..ble', 'sp ace', 'x'.repeat(65), 'a<b']) {
    assert.throws(() => s.addPseudonym({ localPart: bad, domains: 'all', target }), code('invalid'), bad);
  }
  for (const good of ['first.last', "o'brien", 'a+tag', 'x_y-z', 'ok#1']) {
    s.addPseudonym({ localPart: good, domains: 'all', target });
  }
  assert.throws(() => s.addPseudonym({ localPart: 'x', domains: 'all', target: { kind: 'user', name: '*' } }), code('invalid', /login/));
  assert.throws(() => s.addPseudonym({ localPart: 'x', domains: 'all', target: { kind: 'user', name: 'a)(|(x=*' } }), code('invalid'));
  assert.throws(() => s.addPseudonym({ localPart: 'x', domains: 'all', target: { kind: 'computer' as 'user', name: 'a' } }), code('invalid'));
});

test('pseudonyms: remove one domain, the all-domains entry, or every entry of a local part', (t) => {
  const { s } = setup(t);
  s.addDomain({ name: 'a.example', type: 'local' });
  s.addDomain({ name: 'b.example', type: 'local' });
  s.addPseudonym({ localPart: 'x', domains: 'all', target: { kind: 'user', name: 'u' } });
  s.addPseudonym({ localPart: 'x', domains: ['a.example', 'b.example'], target: { kind: 'user', name: 'v' } });
  assert.deepEqual(s.removePseudonym('X', 'A.example').map((p) => p.address), ['x@a.example']);
  assert.equal(s.findPseudonym('x@a.example')?.target.name, 'u', 'falls back to the all-domains entry');
  assert.deepEqual(s.removePseudonym('x', 'all').map((p) => p.address), ['x@*']);
  assert.equal(s.findPseudonym('x@a.example'), null);
  s.addPseudonym({ localPart: 'x', domains: 'all', target: { kind: 'user', name: 'u' } });
  assert.deepEqual(s.removePseudonym('x').map((p) => p.address), ['x@*', 'x@b.example']);
  assert.deepEqual(s.removePseudonym('x'), []);
  assert.deepEqual(s.listPseudonyms(), []);
});

// ---- users --------------------------------------------------------------------------------------------------------

test('users: overrides, case-insensitive logins, effective values, reset', (t) => {
  const { s } = setup(t);
  assert.equal(s.getUser('JSmith'), null);
  assert.deepEqual(s.setUser('JSmith', { quotaMB: 500 }), {
    login: 'JSmith',
    quotaMB: 500,
    spamRetentionDays: null,
    forward: null,
    keepCopy: false,
    sendLimitMessages: null,
    sendLimitRecipients: null,
  });
  assert.equal(s.getUser('jsmith')?.quotaMB, 500);
  assert.equal(s.getUser('JSMITH')?.login, 'JSmith');
  s.setUser('jsmith', { forward: 'John@Elsewhere.Example', keepCopy: true, spamRetentionDays: 30 });
  assert.deepEqual(s.getUser('JSmith'), {
    login: 'jsmith',
    quotaMB: 500,
    spamRetentionDays: 30,
    forward: 'john@elsewhere.example',
    keepCopy: true,
    sendLimitMessages: null,
    sendLimitRecipients: null,
  });
  assert.deepEqual(s.listUsers().map((u) => u.login), ['jsmith']);

  s.set('mailbox.quotaMB', 1000);
  assert.deepEqual(s.effectiveUser('JSMITH'), {
    login: 'jsmith',
    quotaMB: 500,
    quotaCustom: true,
    spamRetentionDays: 30,
    spamRetentionCustom: true,
    forward: 'john@elsewhere.example',
    keepCopy: true,
    sendLimitMessages: 500,
    sendLimitMessagesCustom: false,
    sendLimitRecipients: 2000,
    sendLimitRecipientsCustom: false,
  });
  assert.deepEqual(s.effectiveUser('other'), {
    login: 'other',
    quotaMB: 1000,
    quotaCustom: false,
    spamRetentionDays: 15,
    spamRetentionCustom: false,
    forward: null,
    keepCopy: false,
    sendLimitMessages: 500,
    sendLimitMessagesCustom: false,
    sendLimitRecipients: 2000,
    sendLimitRecipientsCustom: false,
  });

  // Clearing the forward clears keepCopy; clearing everything deletes the row.
  assert.equal(s.setUser('jsmith', { forward: null })?.keepCopy, false);
  assert.equal(s.setUser('jsmith', { quotaMB: null, spamRetentionDays: null }), null);
  assert.equal(s.getUser('jsmith'), null);
  assert.deepEqual(s.listUsers(), []);
  // 0 is a value (unlimited / keep forever), not "unset".
  assert.equal(s.setUser('ann', { quotaMB: 0 })?.quotaMB, 0);
  assert.equal(s.effectiveUser('ann').quotaMB, 0);
  // Send limits (migration 004): a custom value, 0 = no limit, null back to smtp.sendLimit.*; negative refused.
  assert.equal(s.setUser('bob', { sendLimitMessages: 0, sendLimitRecipients: 50 })?.sendLimitRecipients, 50);
  assert.deepEqual(
    (({ sendLimitMessages, sendLimitMessagesCustom, sendLimitRecipients, sendLimitRecipientsCustom }) => ({ sendLimitMessages, sendLimitMessagesCustom, sendLimitRecipients, sendLimitRecipientsCustom }))(s.effectiveUser('BOB')),
    { sendLimitMessages: 0, sendLimitMessagesCustom: true, sendLimitRecipients: 50, sendLimitRecipientsCustom: true },
  );
  assert.throws(() => s.setUser('bob', { sendLimitMessages: -1 }), code('invalid'));
  assert.equal(s.setUser('bob', { sendLimitMessages: null, sendLimitRecipients: null }), null);
});

test('users: validation', (t) => {
  const { s } = setup(t);
  assert.throws(() => s.setUser('ann', { quotaMB: -1 }), code('invalid', /quota/));
  assert.throws(() => s.setUser('ann', { quotaMB: 1.5 }), code('invalid'));
  assert.throws(() => s.setUser('ann', { spamRetentionDays: -3 }), code('invalid', /retention/));
  assert.throws(() => s.setUser('ann', { forward: 'nope' }), code('invalid', /forward address/));
  assert.throws(() => s.setUser('ann', { keepCopy: true }), code('invalid', /forward/));
  assert.throws(() => s.setUser('*', { quotaMB: 1 }), code('invalid', /login/));
  assert.throws(() => s.setUser('', { quotaMB: 1 }), code('invalid'));
  assert.equal(s.getUser('ann'), null);
});

// ---- key/value ----------------------------------------------------------------------------------------------------

test('every key has a default that passes its own schema, a description and an expectation', () => {
  for (const key of SETTING_KEYS) {
    const d = SETTING_DEFS[key];
    const r = d.schema.safeParse(d.default);
    assert.ok(r.success, `${key}: default ${JSON.stringify(d.default)} is invalid`);
    assert.deepEqual(r.data, d.default, key);
    assert.ok(d.description.length > 10, key);
    assert.ok(d.expect.length > 3, key);
  }
});

test('the seed defaults', (t) => {
  const { s } = setup(t);
  const v = s.all();
  assert.equal(v['mailbox.imap'], true);
  assert.equal(v['mailbox.pop3'], true);
  assert.equal(v['mailbox.allowUnencrypted'], false);
  assert.equal(v['mailbox.quotaMB'], 0);
  assert.equal(v['mailbox.spamRetentionDays'], 15);
  assert.equal(v['mailbox.masterUser'], false);
  assert.equal(v['mailbox.deletedToTrash'], false);
  assert.equal(v['queue.lifetimeHours'], 96);
  assert.equal(v['queue.maxMessageSizeMB'], 20);
  assert.equal(v['queue.alwaysBcc'], null);
  assert.equal(v['smarthost.enabled'], false);
  assert.equal(v['smarthost.port'], 587);
  assert.equal(v['smarthost.tls'], 'starttls');
  assert.equal(v['filter.antivirus'], true);
  assert.equal(v['filter.antivirus.action'], 'reject');
  assert.equal(v['filter.spam.threshold'], 5);
  assert.equal(v['filter.spam.denyThreshold'], 15);
  assert.deepEqual(v['smtp.relayFrom'], []);
  assert.equal(v['smtp.authOnPort25'], false);
  assert.equal(v['smtp.senderMustMatchLogin'], true);
  assert.equal(Object.keys(v).length, SETTING_KEYS.length);
});

test('set validates with the key\'s schema and normalises; get returns the typed value; unset restores the default', (t) => {
  const { s } = setup(t);
  assert.equal(s.set('mailbox.quotaMB', 2048), 2048);
  assert.equal(s.get('mailbox.quotaMB'), 2048);
  assert.deepEqual(s.set('smtp.relayFrom', ['192.168.1.20', '10.0.0.0/24', '2001:DB8::/32', '192.168.1.20']), [
    '192.168.1.20',
    '10.0.0.0/24',
    '2001:db8::/32',
  ]);
  assert.deepEqual(s.set('filter.lists.blockFrom', ['Spam.Example', '@other.example', 'Bad@X.Example']), [
    'spam.example',
    'other.example',
    'bad@x.example',
  ]);
  assert.deepEqual(s.set('filter.attachments.custom', ['RTF', '.swf', '*.dmg', 'tar.gz']), ['rtf', 'swf', 'dmg', 'tar.gz']);
  // Only what detection by content can recognise: scripts are plain text, iso/img are not detected.
  for (const t of ['bat', 'js', 'vbs']) {
    assert.throws(() => s.set('filter.attachments.custom', [t]), code('invalid', new RegExp(`${t} files are plain text with no magic number, so they can never be recognised by content.*recognised by content are: .*\\bpdf\\b`)));
  }
  assert.throws(() => s.set('filter.attachments.custom', ['iso']), code('invalid', /iso is not a type that detection by content recognises; the types recognised by content are: 3g2, /));
  assert.equal(s.set('queue.alwaysBcc', 'Archive@Corp.Example'), 'archive@corp.example');
  assert.equal(s.set('queue.alwaysBcc', ''), null);

  assert.throws(() => s.set('mailbox.quotaMB', -1), code('invalid', /^mailbox\.quotaMB: .*expected a whole number of megabytes/));
  assert.throws(() => s.set('mailbox.quotaMB', 1.5), code('invalid', /mailbox\.quotaMB/));
  assert.throws(() => s.set('mailbox.imap', 'yes'), code('invalid', /mailbox\.imap: .*expected yes or no/));
  assert.throws(() => s.set('smtp.relayFrom', ['10.0.0.0/33']), code('invalid', /prefix length/));
  assert.throws(() => s.set('smtp.relayFrom', ['not-an-ip']), code('invalid', /not an IP address/));
  assert.throws(() => s.set('smarthost.tls', 'ssl'), code('invalid', /one of starttls, tls, none/));
  assert.throws(() => s.set('queue.alwaysBcc', 'nobody'), code('invalid'));
  assert.throws(() => s.set('queue.lifetimeHours', 0), code('invalid'));
  assert.throws(() => s.set('no.such.key' as 'mailbox.imap', true), code('unknown-key', /unknown setting "no\.such\.key"/));
  assert.throws(() => s.set('mailbox.imapp' as 'mailbox.imap', true), code('unknown-key', /did you mean mailbox\.imap\?/));

  assert.equal(s.unset('mailbox.quotaMB'), 0);
  assert.equal(s.get('mailbox.quotaMB'), 0);
  assert.equal(s.entries().find((e) => e.key === 'mailbox.quotaMB')?.isSet, false);
  assert.equal(s.entries().find((e) => e.key === 'smtp.relayFrom')?.isSet, true);
});

test('a secret value is not echoed in errors', (t) => {
  const { s } = setup(t);
  assert.throws(
    () => s.set('smarthost.password', 'x'.repeat(2000)),
    (err: unknown) => err instanceof SettingsError && !err.message.includes('xxxx') && /smarthost\.password/.test(err.message),
  );
  s.set('smarthost.password', 's3cret');
  assert.equal(s.get('smarthost.password'), 's3cret');
  assert.equal(s.entries().find((e) => e.key === 'smarthost.password')?.secret, true);
});

test('setFromString parses command-line text', (t) => {
  const { s } = setup(t);
  for (const [text, want] of [
    ['yes', true],
    ['No', false],
    ['TRUE', true],
    ['off', false],
    ['on', true],
    ['enabled', true],
    ['disabled', false],
    ['0', false],
  ] as const) {
    assert.equal(s.setFromString('mailbox.pop3', text), want, text);
  }
  assert.throws(() => s.setFromString('mailbox.pop3', 'maybe'), code('invalid', /mailbox\.pop3: "maybe" is not yes or no/));
  assert.equal(s.setFromString('filter.spam.threshold', ' 4.5 '), 4.5);
  assert.equal(s.setFromString('filter.spam.threshold', '-1'), -1);
  assert.throws(() => s.setFromString('filter.spam.threshold', 'five'), code('invalid', /not a number/));
  assert.throws(() => s.setFromString('mailbox.quotaMB', ''), code('invalid'));
  assert.deepEqual(s.setFromString('smtp.trustedNetworks', '192.168.0.0/16, 10.0.0.1'), ['192.168.0.0/16', '10.0.0.1']);
  assert.deepEqual(s.setFromString('smtp.trustedNetworks', '["172.16.0.0/12"]'), ['172.16.0.0/12']);
  assert.deepEqual(s.setFromString('smtp.trustedNetworks', ''), []);
  assert.throws(() => s.setFromString('smtp.trustedNetworks', '[oops'), code('invalid', /JSON array/));
  assert.equal(s.setFromString('smarthost.tls', 'TLS'), 'tls');
  assert.equal(s.setFromString('filter.spam.subjectPrefix', '"***SPAM*** "'), '***SPAM*** ');
  assert.equal(s.setFromString('filter.spam.subjectPrefix', '[SPAM] '), '[SPAM] ');
  assert.equal(s.setFromString('smtp.heloHost', 'Mail.Corp.Example'), 'mail.corp.example');
  assert.equal(s.setFromString('smtp.heloHost', ''), null);
  assert.equal(s.setFromString('smarthost.port', '465'), 465);
  assert.throws(() => s.setFromString('nope', '1'), code('unknown-key'));
});

test('rules between keys are checked on the result of a change, so setMany can order freely', (t) => {
  const { s } = setup(t);
  assert.throws(() => s.set('smarthost.enabled', true), code('invalid', /smarthost\.host/));
  assert.throws(() => s.set('filter.spam.threshold', 20), code('invalid', /denyThreshold/));
  s.setMany({ 'smarthost.enabled': true, 'smarthost.host': 'smtp.isp.example' });
  assert.equal(s.get('smarthost.enabled'), true);
  assert.throws(() => s.unset('smarthost.host'), code('invalid', /smarthost\.host/));
  assert.throws(() => s.set('smarthost.host', ''), code('invalid'));
  s.setMany({ 'filter.spam.threshold': 20, 'filter.spam.denyThreshold': 30 });
  assert.equal(s.get('filter.spam.threshold'), 20);
  // A refused setMany changes nothing.
  assert.throws(() => s.setMany({ 'mailbox.quotaMB': 5, 'filter.spam.denyThreshold': 10 }), code('invalid'));
  assert.equal(s.get('mailbox.quotaMB'), 0);
  assert.throws(() => s.setMany({ 'mailbox.quotaMB': 5, 'mailbox.imap': 'x' }), code('invalid'));
  assert.equal(s.get('mailbox.quotaMB'), 0);
});

test('a stored value that no longer passes its schema falls back to the default and is reported', (t) => {
  const { s } = setup(t);
  s.db.prepare("INSERT INTO settings (key, value, updated_at) VALUES ('mailbox.quotaMB', '\"lots\"', 'x'), ('future.key', '1', 'x')").run();
  const fresh = new Settings(s.db); // a snapshot taken after the hand edit
  assert.equal(fresh.get('mailbox.quotaMB'), 0);
  assert.match(fresh.entries().find((e) => e.key === 'mailbox.quotaMB')?.invalidStored ?? '', /number/);
  assert.equal(fresh.entries().length, SETTING_KEYS.length, 'unknown keys in the database are ignored');
});

// ---- cache and other connections ----------------------------------------------------------------------------------

test('changes made through another connection are seen without reopening, a millisecond later at most', async (t) => {
  // The snapshot asks SQLite for other connections' changes at most once a millisecond (store.ts SNAPSHOT_CHECK_MS).
  const later = () => new Promise((r) => setTimeout(r, 2));
  const { dir, s } = setup(t);
  // Warm the cache of the first connection.
  assert.equal(s.get('mailbox.imap'), true);
  assert.equal(s.getDomain('corp.example'), null);
  assert.equal(s.getUser('ann'), null);

  const other = openSettings(dir);
  t.after(() => other.close());
  other.set('mailbox.imap', false);
  other.addDomain({ name: 'corp.example', type: 'local' });
  other.addPseudonym({ localPart: 'info', domains: 'all', target: { kind: 'user', name: 'ann' } });
  other.setUser('ann', { quotaMB: 10 });

  await later();
  assert.equal(s.get('mailbox.imap'), false);
  assert.equal(s.getDomain('corp.example')?.type, 'local');
  assert.equal(s.findPseudonym('info@corp.example')?.target.name, 'ann');
  assert.equal(s.getUser('ANN')?.quotaMB, 10);

  // And the other way round, including a raw write that bypasses the Settings class.
  s.set('mailbox.quotaMB', 42);
  await later();
  assert.equal(other.get('mailbox.quotaMB'), 42);
  const raw = openSettingsDatabase(dir);
  raw.prepare("UPDATE settings SET value = '7' WHERE key = 'mailbox.quotaMB'").run();
  raw.close();
  await later();
  assert.equal(s.get('mailbox.quotaMB'), 7);
  assert.equal(other.get('mailbox.quotaMB'), 7);
});

test('get is served from the cache: many reads are cheap', (t) => {
  const { s } = setup(t);
  s.addDomain({ name: 'corp.example', type: 'local' });
  s.addPseudonym({ localPart: 'info', domains: 'all', target: { kind: 'user', name: 'ann' } });
  const start = process.hrtime.bigint();
  for (let i = 0; i < 20000; i++) {
    s.get('queue.alwaysBcc');
    s.findPseudonym('info@corp.example');
  }
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  assert.ok(ms < 2000, `40000 lookups took ${ms} ms`);
});
