import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli, useCliConfig } from '../../helpers/cli-main.ts';
import { openSettings } from '../../../src/settings/store.ts';

const cli = useCliConfig('postern-cli-');

function run(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  return runCli(argv, async () => 'Disclaimer from stdin\n');
}

test('domain add / list / set / remove', async () => {
  let r = await run('domain', 'add', 'Corp.Example', '--bcc', 'john.smith@corp.example');
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /added domain corp\.example: delivered to local mailboxes/);
  assert.match(r.out, /always Bcc: john\.smith@corp\.example/);

  const disclaimer = join(cli.root, 'disclaimer.md');
  writeFileSync(disclaimer, 'This email is **confidential**.\n');
  r = await run('domain', 'add', 'partner.example', '--relay', 'mx.partner.example:2525', '--disclaimer', disclaimer);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /relayed to mx\.partner\.example:2525/);

  r = await run('domain', 'add', 'corp.example');
  assert.equal(r.code, 1);
  assert.match(r.err, /already exists/);
  r = await run('domain', 'add', 'not_a_domain');
  assert.equal(r.code, 64);
  assert.match(r.err, /fully qualified domain name/);
  r = await run('domain', 'add', 'x.example', '--disclaimer', join(cli.root, 'missing.md'));
  assert.equal(r.code, 1);
  assert.match(r.err, /cannot read the disclaimer file/);

  r = await run('domain', 'list');
  assert.equal(r.code, 0);
  assert.match(r.out, /^DOMAIN\s+TYPE\s+NEXT HOP\s+BCC\s+DISCLAIMER\s+IMAP REFERRAL$/m);
  assert.match(r.out, /^corp\.example\s+local\s+-\s+john\.smith@corp\.example\s+-\s+-$/m);
  assert.match(r.out, /^partner\.example\s+relay\s+mx\.partner\.example:2525\s+-\s+yes\s+-$/m);
  r = await run('domain', 'list', '--json');
  const list = JSON.parse(r.out) as { name: string; disclaimer: string | null }[];
  assert.deepEqual(list.map((d) => d.name), ['corp.example', 'partner.example']);
  assert.equal(list[1].disclaimer, 'This email is **confidential**.\n');

  r = await run('domain', 'set', 'corp.example', '--no-bcc', '--disclaimer', '-');
  assert.equal(r.code, 0, r.err);
  r = await run('domain', 'show', 'corp.example', '--json');
  assert.deepEqual(JSON.parse(r.out), {
    name: 'corp.example',
    type: 'local',
    nexthop: null,
    bcc: null,
    disclaimer: 'Disclaimer from stdin\n',
    imapReferral: null,
  });
  r = await run('domain', 'set', 'corp.example', '--no-disclaimer');
  assert.equal(r.code, 0);
  r = await run('domain', 'set', 'corp.example');
  assert.equal(r.code, 64);
  assert.match(r.err, /nothing to change/);
  r = await run('domain', 'set', 'nowhere.example', '--no-bcc');
  assert.equal(r.code, 1);
  assert.match(r.err, /no domain nowhere\.example/);

  // RFC 2221 login referrals: the IMAP server that still holds the domain's mailboxes.
  r = await run('domain', 'set', 'partner.example', '--imap-referral', 'IMAP://Mail.Partner.Example:1143');
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /IMAP referral: imap:\/\/mail\.partner\.example:1143\/ \(IMAP logins of its users are referred there\)/);
  r = await run('domain', 'list');
  assert.match(r.out, /^partner\.example\s+relay\s+mx\.partner\.example:2525\s+-\s+yes\s+imap:\/\/mail\.partner\.example:1143\/$/m);
  r = await run('domain', 'show', 'partner.example', '--json');
  assert.equal((JSON.parse(r.out) as { imapReferral: string }).imapReferral, 'imap://mail.partner.example:1143/');
  r = await run('domain', 'set', 'partner.example', '--imap-referral', 'imap://someone@mail.partner.example/');
  assert.equal(r.code, 64);
  assert.match(r.err, /server only/);
  r = await run('domain', 'set', 'partner.example', '--no-imap-referral');
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /IMAP referral: no/);
  r = await run('domain', 'add', 'old.example', '--imap-referral', 'imap://mail.old.example/');
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /IMAP referral: imap:\/\/mail\.old\.example\//);
  r = await run('domain', 'remove', 'old.example');
  assert.equal(r.code, 0);

  r = await run('domain', 'remove', 'partner.example');
  assert.equal(r.code, 0);
  assert.match(r.out, /removed domain partner\.example; mail already received is kept/);
  r = await run('domain', 'remove', 'partner.example');
  assert.equal(r.code, 1);
});

test('address add / list / remove', async () => {
  await run('domain', 'add', 'addr.example');
  await run('domain', 'add', 'other.example');
  let r = await run('address', 'add', 'Info', '--group', 'Sales');
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /added info@\* → group Sales/);
  r = await run('address', 'add', 'info@addr.example', '--user', 'John.Smith', '--local-network-only');
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /added info@addr\.example → user John.Smith \(local network only\)/);
  r = await run('address', 'add', 'help', '--user', 'anna.bianchi', '--domains', 'addr.example,other.example');
  assert.equal(r.code, 0, r.err);
  assert.equal(r.out.split('\n').length, 2);

  r = await run('address', 'add', 'x', '--user', 'a', '--group', 'b');
  assert.equal(r.code, 64);
  r = await run('address', 'add', 'x');
  assert.equal(r.code, 64);
  assert.match(r.err, /exactly one of --user LOGIN or --group NAME/);
  r = await run('address', 'add', 'x@addr.example', '--user', 'a', '--domains', 'other.example');
  assert.equal(r.code, 64);
  r = await run('address', 'add', 'x%y', '--user', 'a');
  assert.equal(r.code, 64);
  r = await run('address', 'add', 'x@unknown.example', '--user', 'a');
  assert.equal(r.code, 64);
  assert.match(r.err, /not configured/);
  r = await run('address', 'add', 'INFO@addr.example', '--user', 'b');
  assert.equal(r.code, 1);
  assert.match(r.err, /already exists/);

  r = await run('address', 'list');
  assert.equal(r.code, 0);
  assert.match(r.out, /^help@addr\.example\s+user anna\.bianchi\s+no$/m);
  assert.match(r.out, /^info@\*\s+group Sales\s+no$/m);
  assert.match(r.out, /^info@addr\.example\s+user John.Smith\s+yes$/m);
  r = await run('address', 'list', '--json');
  const list = JSON.parse(r.out) as { address: string; active: boolean }[];
  assert.deepEqual(list.map((p) => p.address), ['help@addr.example', 'help@other.example', 'info@*', 'info@addr.example']);

  // What the server sees.
  const s = openSettings(cli.dataDir);
  try {
    assert.equal(s.findPseudonym('info@other.example')?.target.name, 'Sales');
    assert.equal(s.findPseudonym('INFO@ADDR.EXAMPLE')?.target.name, 'John.Smith');
  } finally {
    s.close();
  }

  r = await run('address', 'remove', 'help@other.example');
  assert.equal(r.code, 0);
  assert.match(r.out, /removed help@other\.example/);
  r = await run('address', 'remove', 'info@*');
  assert.equal(r.code, 0);
  assert.doesNotMatch(r.out, /addr\.example/);
  r = await run('address', 'remove', 'info');
  assert.match(r.out, /removed info@addr\.example/);
  r = await run('address', 'remove', 'info');
  assert.equal(r.code, 1);
  assert.match(r.err, /no address info/);
});

test('user set / show / list', async () => {
  let r = await run('user', 'set', 'John.Smith', '--quota', '500', '--forward', 'john@elsewhere.example', '--keep-copy');
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /quota: 500 MB \(custom\)/);
  assert.match(r.out, /forward: john@elsewhere\.example, keeping a copy here/);
  r = await run('user', 'show', 'john.smith', '--json');
  const shown = JSON.parse(r.out) as Record<string, unknown>;
  assert.equal(shown.quotaMB, 500);
  assert.equal(shown.login, 'John.Smith');
  assert.equal(shown.spamRetentionDays, 15);
  assert.equal(shown.keepCopy, true);

  r = await run('user', 'set', 'john.smith', '--spam-retention', '30', '--no-forward');
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /spam retention: 30 days \(custom\)/);
  assert.match(r.out, /forward: no/);
  r = await run('user', 'list');
  assert.match(r.out, /user john\.smith/);

  r = await run('user', 'set', 'john.smith', '--quota', 'lots');
  assert.equal(r.code, 64);
  r = await run('user', 'set', 'john.smith');
  assert.equal(r.code, 64);
  r = await run('user', 'set', 'john.smith', '--keep-copy');
  assert.equal(r.code, 64);
  assert.match(r.err, /forward/);
  r = await run('user', 'set', 'john.smith', '--forward', 'not-an-address');
  assert.equal(r.code, 64);
  r = await run('user', 'show', '*');
  assert.equal(r.code, 64);

  r = await run('user', 'set', 'john.smith', '--quota', 'default', '--spam-retention', 'default');
  assert.equal(r.code, 0);
  assert.match(r.out, /quota: none \(mailbox\.quotaMB\)/);
  r = await run('user', 'list', '--json');
  assert.deepEqual(JSON.parse(r.out), []);
});

test('user set --send-limit-messages / --send-limit-recipients: a custom hourly send limit, 0 = none, default', async () => {
  let r = await run('user', 'show', 'laura.verdi');
  assert.match(r.out, /send limit: 500 messages\/hour \(smtp\.sendLimit\.messagesPerHour\), 2000 recipients\/hour \(smtp\.sendLimit\.recipientsPerHour\)/);
  r = await run('user', 'set', 'Laura.Verdi', '--send-limit-messages', '50', '--send-limit-recipients', '0');
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /send limit: 50 messages\/hour \(custom\), no recipients limit \(custom\)/);
  const s = openSettings(cli.dataDir);
  try {
    assert.equal(s.effectiveUser('laura.verdi').sendLimitMessages, 50);
    assert.equal(s.effectiveUser('laura.verdi').sendLimitRecipients, 0);
  } finally {
    s.close();
  }
  r = await run('user', 'set', 'laura.verdi', '--send-limit-messages', '-3');
  assert.equal(r.code, 64);
  r = await run('user', 'set', 'laura.verdi', '--send-limit-messages', 'default', '--send-limit-recipients', 'default');
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /send limit: 500 messages\/hour \(smtp\.sendLimit\.messagesPerHour\)/);
  r = await run('user', 'list', '--json');
  assert.deepEqual(JSON.parse(r.out), []);
});

test('settings get / set / unset / list', async () => {
  let r = await run('settings', 'get', 'mailbox.imap');
  assert.equal(r.code, 0);
  assert.equal(r.out, 'true');

  r = await run('settings', 'set', 'mailbox.imap', 'no');
  assert.equal(r.code, 0, r.err);
  assert.equal(r.out, 'mailbox.imap = false');
  r = await run('settings', 'get', 'mailbox.imap');
  assert.equal(r.out, 'false');

  r = await run('settings', 'set', 'smtp.relayFrom', '192.168.1.20, 10.0.0.0/24');
  assert.equal(r.code, 0, r.err);
  r = await run('settings', 'get', 'smtp.relayFrom');
  assert.equal(r.out, '192.168.1.20,10.0.0.0/24');
  r = await run('settings', 'get', 'smtp.relayFrom', '--json');
  assert.deepEqual(JSON.parse(r.out), ['192.168.1.20', '10.0.0.0/24']);

  // A negative number is a value, not an option; several pairs are checked together.
  r = await run('settings', 'set', 'filter.spam.threshold', '-2');
  assert.equal(r.code, 0, r.err);
  r = await run('settings', 'set', 'filter.spam.denyThreshold', '40', 'filter.spam.threshold', '30');
  assert.equal(r.code, 0, r.err);
  r = await run('settings', 'set', 'filter.spam.threshold', '50');
  assert.equal(r.code, 64);
  assert.match(r.err, /denyThreshold/);
  r = await run('settings', 'set', 'mailbox.imap');
  assert.equal(r.code, 64);
  r = await run('settings', 'set', 'mailbox.imap', 'yes', 'mailbox.pop3');
  assert.equal(r.code, 64);

  r = await run('settings', 'set', 'mailbox.quotaMB', 'lots');
  assert.equal(r.code, 64);
  assert.match(r.err, /mailbox\.quotaMB/);
  r = await run('settings', 'set', 'smtp.relayFrom', '10.0.0.0/33');
  assert.equal(r.code, 64);
  assert.match(r.err, /smtp\.relayFrom.*prefix length/);
  r = await run('settings', 'get', 'mailbox.imapp');
  assert.equal(r.code, 64);
  assert.match(r.err, /unknown setting "mailbox\.imapp"; did you mean mailbox\.imap\?/);

  r = await run('settings', 'set', 'smarthost.password', 's3cret');
  assert.equal(r.code, 0);
  assert.doesNotMatch(r.out, /s3cret/);
  r = await run('settings', 'get', 'smarthost.password');
  assert.equal(r.out, '***');
  r = await run('settings', 'get', 'smarthost.password', '--reveal');
  assert.equal(r.out, 's3cret');

  r = await run('settings', 'get');
  assert.equal(r.code, 0);
  assert.match(r.out, /^mailbox\.imap\s+= false$/m);
  assert.match(r.out, /^mailbox\.pop3\s+= true\s+\(default\)$/m);
  assert.match(r.out, /^smarthost\.password\s+= \*\*\*$/m);
  assert.doesNotMatch(r.out, /s3cret/);
  r = await run('settings', 'get', '--json');
  const all = JSON.parse(r.out) as Record<string, unknown>;
  assert.equal(all['mailbox.imap'], false);
  assert.equal(all['queue.lifetimeHours'], 96);
  assert.equal(all['smarthost.password'], '***');

  r = await run('settings', 'list');
  assert.equal(r.code, 0);
  assert.match(r.out, /^# Mailboxes$/m);
  assert.match(r.out, /^mailbox\.imap = false {2}\(default true\)$/m);
  assert.match(r.out, /^queue\.lifetimeHours = 96 {2}\(default\)$/m);
  assert.match(r.out, /4 days/);
  assert.doesNotMatch(r.out, /s3cret/);
  r = await run('settings', 'list', '--json');
  const entries = JSON.parse(r.out) as { key: string; value: unknown; default: unknown; description: string }[];
  assert.equal(entries.find((e) => e.key === 'smarthost.password')?.value, '***');

  r = await run('settings', 'unset', 'mailbox.imap');
  assert.equal(r.code, 0);
  assert.equal(r.out, 'mailbox.imap = true (default)');
  r = await run('settings', 'get', 'mailbox.imap');
  assert.equal(r.out, 'true');
  r = await run('settings', 'unset', 'nope');
  assert.equal(r.code, 64);
});

test('a configuration error exits 78 and no database is opened for --help', async () => {
  const saved = process.env.POSTERN_CONFIG;
  process.env.POSTERN_CONFIG = join(cli.root, 'missing.yaml');
  try {
    const r = await run('settings', 'get', 'mailbox.imap');
    assert.equal(r.code, 78);
    assert.match(r.err, /cannot read/);
    const help = await run('settings', '--help');
    assert.equal(help.code, 0);
  } finally {
    process.env.POSTERN_CONFIG = saved;
  }
});

test('refuses a Bcc target, a pseudonym target or a login the directory does not know (exit 1); --force warns and goes on', async () => {
  await run('domain', 'add', 'refs.example');
  await run('domain', 'add', 'example.com');
  let r = await run('settings', 'set', 'queue.alwaysBcc', 'ghost@refs.example');
  assert.equal(r.code, 1, r.err);
  assert.match(r.err, /queue\.alwaysBcc: no user, group or pseudonym has the address ghost@refs\.example .*every copy would bounce; if the AD account is about to be created, use --force/);
  assert.equal((await run('settings', 'get', 'queue.alwaysBcc')).out, '');
  r = await run('settings', 'set', 'queue.alwaysBcc', 'ghost@refs.example', '--force');
  assert.equal(r.code, 0, r.err);
  assert.match(r.err, /^postern: warning: queue\.alwaysBcc: no user, group or pseudonym/);
  assert.equal((await run('settings', 'unset', 'queue.alwaysBcc')).code, 0);

  r = await run('domain', 'set', 'refs.example', '--bcc', 'old@example.com');
  assert.equal(r.code, 1);
  assert.match(r.err, /disabled or expired/);
  r = await run('domain', 'add', 'refs2.example', '--bcc', 'nobody@refs2.example');
  assert.equal(r.code, 1);
  assert.equal((await run('domain', 'show', 'refs2.example')).code, 1, 'nothing was added');

  r = await run('address', 'add', 'boss@refs.example', '--user', 'next.hire');
  assert.equal(r.code, 1);
  assert.match(r.err, /user: the directory has no user "next\.hire"/);
  r = await run('address', 'add', 'team@refs.example', '--group', 'Salez');
  assert.equal(r.code, 1);
  assert.match(r.err, /group: the directory has no group "Salez"/);
  r = await run('address', 'add', 'boss@refs.example', '--user', 'next.hire', '--force');
  assert.equal(r.code, 0, r.err);
  assert.match(r.err, /warning: .*next\.hire/);

  r = await run('user', 'set', 'next.hire', '--quota', '10');
  assert.equal(r.code, 1);
  assert.match(r.err, /login: the directory has no user "next\.hire"/);
  r = await run('user', 'set', 'next.hire', '--quota', '10', '--force');
  assert.equal(r.code, 0, r.err);
  r = await run('settings', 'set', 'filter.attachments.custom', 'vbs');
  assert.notEqual(r.code, 0);
  assert.match(r.err, /vbs files are plain text with no magic number/);
});
