/**
 * Sieve at delivery (issue 15 §1): mail sent over SMTP to users whose active script (Pigeonhole layout, written
 * with the ManageSieve storage) files, flags, rejects, redirects, discards, edits headers, or is broken, and the
 * admin before script; the Maildir and a sink playing the outside world show what happened. Spam-to-Junk keeps
 * working with and without a script (the spam verdict is put on the queued envelope, as the filters would).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ImapFlow } from 'imapflow';
import { SieveScriptStore } from '../../src/sieve/storage.ts';
import { startDnsServer, type TestDnsServer } from '../helpers/dns-server.ts';
import type { TestServer } from '../helpers/server.ts';
import { startSmtpSink, type SmtpSink } from '../helpers/smtp-sink.ts';
import { waitFor } from '../helpers/wait.ts';
import { logCapture, startSmtpTestServer, transport, waitForEmptyQueue } from './smtp-env.ts';

let server: TestServer;
let sink: SmtpSink;
let dns: TestDnsServer;
const logs = logCapture();
const scripts = new SieveScriptStore();
const beforeFile = join(mkdtempSync(join(tmpdir(), 'postern-sieve-before-')), 'before.sieve');

before(async () => {
  sink = await startSmtpSink();
  dns = await startDnsServer({
    'outside.example': { MX: [{ exchange: 'mx.outside.example', priority: 10 }] },
    'mx.outside.example': { A: ['127.0.0.1'] },
  });
  // The admin before script: tickets go to their folder for everyone, ahead of the users' own scripts.
  writeFileSync(beforeFile, 'require ["fileinto", "mailbox"];\nif header :contains "subject" "[ticket]" { fileinto :create "Tickets"; }\n');
  server = await startSmtpTestServer(
    { delivery: { remotePort: sink.port }, dns: { servers: [dns.address], timeoutMs: 500 }, sieve: { before: beforeFile } },
    { logStream: logs.stream },
  );
});

after(async () => {
  await server.close();
  await sink.close();
  await dns.close();
});

/** Makes `text` the active script of `login` (sieve/NAME.sieve + the .dovecot.sieve link). */
async function activate(login: string, text: string, name = 'main'): Promise<void> {
  const home = server.store.homePath(await owner(login));
  await scripts.put(home, name, text);
  await scripts.setActive(home, name);
}

/** A user's mailbox is their AD object's (objectGUID), as delivery finds it. */
const owners = new Map<string, { kind: 'user'; login: string; guid?: string }>();
async function owner(login: string) {
  const user = await server.core.directory.findLogin(login);
  assert.ok(user, login);
  const o = { kind: 'user' as const, login: user.login, ...(user.guid ? { guid: user.guid } : {}) };
  owners.set(login.toLowerCase(), o);
  return o;
}

/** Every message of a folder (new/ and cur/), with the flags of its file name. */
function folder(login: string, name = 'INBOX'): { text: string; flags: string }[] {
  const dir = server.store.folderPath(owners.get(login.toLowerCase()) ?? { kind: 'user', login }, name);
  const out: { text: string; flags: string }[] = [];
  for (const sub of ['new', 'cur']) {
    if (!existsSync(join(dir, sub))) continue;
    for (const f of readdirSync(join(dir, sub)).sort()) out.push({ text: readFileSync(join(dir, sub, f), 'utf8'), flags: /:2,([A-Za-z]*)$/.exec(f)?.[1] ?? '' });
  }
  return out;
}

const withSubject = (login: string, subject: string, name = 'INBOX') => folder(login, name).filter((m) => m.text.includes(`\r\nSubject: ${subject}\r\n`));

let seq = 0;
function mail(subject: string, to: string, headers: Record<string, string> = {}): string {
  const extra = Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('');
  return `From: <carl@outside.example>\r\nTo: <${to}>\r\nSubject: ${subject}\r\nMessage-ID: <s${++seq}.${Date.now()}@outside.example>\r\n${extra}\r\nHello.\r\n`;
}

async function send(to: string, subject: string, headers: Record<string, string> = {}, from = 'carl@outside.example'): Promise<void> {
  await transport(server, 'smtp').sendMail({ envelope: { from, to: [to] }, raw: mail(subject, to, headers) });
}

async function settle(): Promise<void> {
  await waitForEmptyQueue(server, 20_000);
}

describe('Sieve at delivery', () => {
  test('fileinto :create with imap4flags files the message flagged; without :create a missing folder means INBOX', async () => {
    await activate(
      'john.smith',
      `require ["fileinto", "imap4flags", "mailbox"];
if header :contains "subject" "invoice" { fileinto :create :flags ["\\\\Seen", "\\\\Flagged"] "Invoices"; stop; }
if header :contains "subject" "nowhere" { fileinto "Does-Not-Exist"; stop; }
`,
    );
    await send('john@example.com', 'invoice 42');
    await send('john@example.com', 'nowhere to go');
    await settle();
    const filed = withSubject('john.smith', 'invoice 42', 'Invoices');
    assert.equal(filed.length, 1, 'filed in the created folder');
    assert.equal(filed[0].flags, 'FS', '\\Flagged and \\Seen in the Maildir file name');
    assert.equal(withSubject('john.smith', 'invoice 42').length, 0, 'fileinto cancels the implicit keep');
    assert.equal(withSubject('john.smith', 'nowhere to go').length, 1, 'a folder that does not exist, without :create: INBOX');
    assert.equal(existsSync(server.store.folderPath(owners.get('john.smith')!, 'Does-Not-Exist')), false);
  });

  test('imap4flags keywords (a Thunderbird tag, a custom keyword) are stored with the message and seen over IMAP', async () => {
    await activate(
      'anna.bianchi',
      `require ["fileinto", "imap4flags", "mailbox"];
if header :contains "subject" "tagged" { addflag "$label1"; addflag "Project-X \\\\Flagged"; }
if header :contains "subject" "filed" { fileinto :create :flags ["$label2", "\\\\Seen"] "Tagged"; }
`,
    );
    await send('anna@example.com', 'tagged for later');
    await send('anna@example.com', 'filed and tagged');
    await settle();
    const keywordsFile = (name: string) => readFileSync(join(server.store.folderPath(owners.get('anna.bianchi') ?? { kind: 'user', login: 'anna.bianchi' }, name), 'dovecot-keywords'), 'utf8');
    assert.match(keywordsFile('INBOX'), /^\d+ \$label1$/m);
    assert.match(keywordsFile('INBOX'), /^\d+ Project-X$/m);
    assert.match(keywordsFile('Tagged'), /^\d+ \$label2$/m);
    const c = new ImapFlow({ host: '127.0.0.1', port: server.ports.imaps!, secure: true, tls: { rejectUnauthorized: false }, auth: { user: 'anna.bianchi', pass: 'Corp!Passw0rd' }, logger: false });
    await c.connect();
    try {
      const flagsOf = async (folderName: string, subject: string) => {
        await c.mailboxOpen(folderName);
        for await (const m of c.fetch('1:*', { envelope: true, flags: true })) if (m.envelope?.subject === subject) return [...(m.flags ?? [])].sort();
        return undefined;
      };
      assert.deepEqual(await flagsOf('INBOX', 'tagged for later'), ['$label1', 'Project-X', '\\Flagged'].sort());
      assert.deepEqual(await flagsOf('Tagged', 'filed and tagged'), ['$label2', '\\Seen'].sort());
    } finally {
      await c.logout().catch(() => undefined);
    }
  });

  test('reject sends a rejection notice (MDN) to the sender through the queue and stores nothing; never to <>', async () => {
    await activate('mario.rossi', 'require "reject";\nif header :contains "subject" "offer" { reject "No offers, thank you."; }\n');
    await send('mario@example.com', 'special offer');
    await send('mario@example.com', 'offer from a robot', {}, '');
    await settle();
    assert.equal(withSubject('mario.rossi', 'special offer').length, 0);
    assert.equal(withSubject('mario.rossi', 'offer from a robot').length, 0);
    const notices = sink.messages.filter((m) => m.to.includes('carl@outside.example') && m.data.toString('utf8').includes('report-type=disposition-notification'));
    assert.equal(notices.length, 1, 'one notice: the message from <> gets none');
    const text = notices[0].data.toString('utf8');
    assert.equal(notices[0].from, '', 'RFC 3798 §3: the notice has the null return path');
    assert.match(text, /No offers, thank you\./);
    assert.match(text, /^Disposition: automatic-action\/MDN-sent-automatically; deleted\r$/m);
    assert.match(text, /^Subject: special offer\r$/m, 'the original header comes back');
  });

  test('redirect sends the message on (SRS sender), :copy keeps one too, discard stores nothing', async () => {
    await activate(
      'laura.verdi',
      `require ["copy"];
if header :contains "subject" "forward me" { redirect "bob@outside.example"; }
elsif header :contains "subject" "copy me" { redirect :copy "bob@outside.example"; }
elsif header :contains "subject" "spam-ish" { discard; }
`,
    );
    await send('laura.verdi@example.com', 'forward me');
    await send('laura.verdi@example.com', 'copy me');
    await send('laura.verdi@example.com', 'spam-ish');
    await settle();
    const atBob = (s: string) => sink.messages.filter((m) => m.to.includes('bob@outside.example') && m.data.toString('latin1').includes(`\r\nSubject: ${s}\r\n`));
    assert.equal(atBob('forward me').length, 1);
    assert.equal(atBob('copy me').length, 1);
    assert.match(atBob('forward me')[0].from, /^SRS0=/i, 'the original sender is rewritten with SRS, as forwards are');
    assert.match(atBob('forward me')[0].data.toString('latin1'), /^Delivered-To: laura\.verdi@example\.com\r$/m, 'loop detection sees where it went');
    assert.equal(withSubject('laura.verdi', 'forward me').length, 0, 'redirect cancels the keep');
    assert.equal(withSubject('laura.verdi', 'copy me').length, 1, 'redirect :copy keeps it');
    assert.equal(withSubject('laura.verdi', 'spam-ish').length, 0, 'discard');
    assert.equal(atBob('spam-ish').length, 0);
  });

  test('editheader changes the delivered copy', async () => {
    await activate('paolo.neri', 'require ["editheader"];\naddheader "X-Filtered" "by postern";\ndeleteheader "X-Remove-Me";\n');
    await send('paolo.neri@example.com', 'edit me', { 'X-Remove-Me': 'secret' });
    await settle();
    const [m] = withSubject('paolo.neri', 'edit me');
    assert.ok(m, 'delivered');
    assert.match(m.text, /^X-Filtered: by postern\r$/m);
    assert.doesNotMatch(m.text, /X-Remove-Me/);
  });

  test('a script that does not compile, or fails at run time, delivers to INBOX and logs why', async () => {
    await activate('giulia.gallo', 'require ["fileinto"];\nif header :contains "subject" "x" { fileinto "A" }\n');
    await send('giulia.gallo@example.com', 'broken script');
    await settle();
    assert.equal(withSubject('giulia.gallo', 'broken script').length, 1);
    const line = await waitFor('the log line', () => logs.lines.find((l) => l.msg === 'sieve: script failed; the message is kept' && l.login === 'giulia.gallo'));
    assert.match(String(line.err), /line \d+ column \d+/);

    // Five redirects where four are allowed: a limit is a run-time error, nothing is sent, the message is kept.
    await activate('giulia.gallo', ['a', 'b', 'c', 'd', 'e'].map((x) => `redirect "${x}@outside.example";`).join('\n'), 'limits');
    await send('giulia.gallo@example.com', 'too many redirects');
    await settle();
    assert.equal(withSubject('giulia.gallo', 'too many redirects').length, 1);
    assert.equal(sink.messages.filter((m) => m.data.toString('latin1').includes('Subject: too many redirects')).length, 0);
  });

  test('the admin before script runs ahead of the user script, and for users without one', async () => {
    await owner('it.tech');
    await send('it.tech@example.com', '[ticket] printer on fire');
    await activate('admin', 'require ["imap4flags"];\naddflag "\\\\Flagged";\n');
    await send('admin@example.com', '[ticket] keyboard');
    await send('admin@example.com', 'plain note');
    await settle();
    assert.equal(withSubject('it.tech', '[ticket] printer on fire', 'Tickets').length, 1, 'no user script: the before script alone');
    assert.equal(withSubject('it.tech', '[ticket] printer on fire').length, 0);
    assert.equal(withSubject('admin', '[ticket] keyboard', 'Tickets').length, 1);
    const note = withSubject('admin', 'plain note');
    assert.equal(note.length, 1);
    assert.equal(note[0].flags, 'F', "the user's script ran after the before script");
  });

  test('spam goes to Junk with and without a script; only a fileinto puts it elsewhere', async () => {
    server.core.settings.set('mailbox.moveSpamToJunk', true);
    const spam = async (to: string, subject: string) =>
      server.spool.enqueue(Buffer.from(mail(subject, to)), {
        from: 'carl@outside.example',
        recipients: [{ address: to, origin: 'rcpt', state: 'pending', attempts: 0 }],
        client: { address: '192.0.2.1', listener: 'smtp' },
        spam: true,
      });
    await owner('it.tech');
    // it.tech: the before script only; paolo.neri: a script that only edits (implicit keep); john.smith: files invoices.
    await spam('it.tech@example.com', 'spam no script');
    await spam('paolo.neri@example.com', 'spam implicit keep');
    await spam('john.smith@example.com', 'invoice spam');
    await settle();
    assert.equal(withSubject('it.tech', 'spam no script', 'Junk').length, 1);
    assert.equal(withSubject('paolo.neri', 'spam implicit keep', 'Junk').length, 1);
    assert.equal(withSubject('paolo.neri', 'spam implicit keep').length, 0);
    assert.equal(withSubject('john.smith', 'invoice spam', 'Invoices').length, 1, 'an explicit fileinto wins');
  });

  test('vacation and duplicate in a user script: one reply per :days, a second copy of one Message-ID discarded', async () => {
    await activate(
      'carla.fermi',
      `require ["vacation", "duplicate"];
if duplicate { discard; stop; }
vacation :days 1 :subject "Away" "Carla is away.";
`,
    );
    const data = mail('same message twice', 'carla@example.com');
    for (let i = 0; i < 2; i++) await transport(server, 'smtp').sendMail({ envelope: { from: 'dora@outside.example', to: ['carla@example.com'] }, raw: data });
    await send('carla@example.com', 'another one', {}, 'dora@outside.example');
    await settle();
    assert.equal(withSubject('Carla.Fermi', 'same message twice').length, 1, 'RFC 7352: the duplicate is discarded');
    assert.equal(withSubject('Carla.Fermi', 'another one').length, 1);
    const replies = sink.messages.filter((m) => m.to.includes('dora@outside.example') && /^Auto-Submitted: auto-replied\r$/m.test(m.data.toString('latin1')));
    assert.equal(replies.length, 1, 'one reply inside :days');
    assert.match(replies[0].data.toString('utf8'), /^Subject: Away\r$/m);
  });
});
