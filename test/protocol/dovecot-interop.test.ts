/**
 * One Maildir, handed back and forth between a real Dovecot (test/harness/dovecot.ts) and postern's IMAP server,
 * each driven by imapflow the way a mail client does, never both at once:
 *
 *  1. Dovecot makes and subscribes folders with non-ASCII names, messages with keywords, expunges one, and
 *     stops; postern opened on the same files shows the same UIDVALIDITY, UIDNEXT, UIDs, flags, keywords, folder
 *     names and subscriptions.
 *  2. postern appends, flags, un-flags, makes a folder and (un)subscribes; Dovecot started again shows the same.
 *  3. Dovecot's next APPEND continues postern's UIDs.
 *
 * A client moved from one server to the other therefore keeps its cache: that is what the UIDs are for.
 */
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ImapFlow } from 'imapflow';
import { Authenticator } from '../../src/auth/authenticator.ts';
import { authSchema } from '../../src/config/schema.ts';
import { LdifDirectory } from '../../src/directory/ldif/ldif-directory.ts';
import { startImap, type ImapServer } from '../../src/imap/server.ts';
import { silentLogger } from '../../src/lib/logger.ts';
import { MaildirMailbox } from '../../src/store/maildir-mailbox.ts';
import { MaildirStore } from '../../src/store/maildir.ts';
import { createDovecot, type TestDovecot } from '../harness/dovecot.ts';
import { DOVECOT_PACKAGES, ensureDebianPackages } from '../harness/packages.ts';
import { ROOT } from '../helpers/cli.ts';

const LOGIN = 'john.smith';
const PASSWORD = 'Corp!Passw0rd'; // john.smith's in fixtures/ad/corp.ldif; Dovecot's passwd-file gets the same

let dir: string;
let mailRoot: string;
let dovecot: TestDovecot;
const running = new Set<{ close(): Promise<void> }>();

before(async () => {
  await ensureDebianPackages(DOVECOT_PACKAGES, (m) => console.log(`# ${m}`));
  dir = mkdtempSync(join(tmpdir(), 'postern-interop-'));
  chmodSync(dir, 0o755); // Dovecot reads mail as nobody when the tests run as root
  mailRoot = join(dir, 'mail');
  dovecot = await createDovecot({ mailRoot, users: [{ login: LOGIN, password: PASSWORD }] });
});

after(async () => {
  for (const p of running) await p.close();
  await dovecot?.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** postern's IMAP server over the Maildir store at mailRoot, as `postern serve` builds it. */
async function startPostern(): Promise<{ port: number; close(): Promise<void> }> {
  const store = new MaildirStore({ root: mailRoot, hostname: 'mail.corp.example' });
  const mailbox = new MaildirMailbox({ store, quotaBytes: () => 0, log: silentLogger, autocreate: false });
  const auth = new Authenticator({
    directory: LdifDirectory.fromFile(join(ROOT, 'fixtures/ad/corp.ldif'), { userPrincipalNameIsAddress: true }),
    config: authSchema.parse({ failureDelayMs: 0 }),
    masterUserEnabled: () => false,
    log: silentLogger,
  });
  const server: ImapServer = await startImap({
    port: 0,
    host: '127.0.0.1',
    secure: false,
    auth,
    mailbox,
    settings: { get: (key) => key === 'mailbox.allowUnencrypted' || key === 'mailbox.imap' },
    hostname: 'mail.corp.example',
    log: silentLogger,
  });
  const handle = {
    port: server.port,
    async close() {
      running.delete(handle);
      await server.close();
      mailbox.close();
    },
  };
  running.add(handle);
  return handle;
}

function client(port: number): ImapFlow {
  return new ImapFlow({ host: '127.0.0.1', port, secure: false, doSTARTTLS: false, auth: { user: LOGIN, pass: PASSWORD }, logger: false });
}

interface FolderView {
  uidValidity: string;
  uidNext: number;
  /** uid → flags without \Recent (session state, not stored), sorted. */
  messages: [number, string[]][];
}

interface View {
  /**
   * Selectable folder names as the client decodes them. (Dovecot also lists a missing parent, 'Café' of
   * 'Café/Sub', as \Noselect; postern leaves it out, which RFC 3501 §6.3.8 allows for "*".)
   */
  folders: string[];
  /** The subscribed ones (LSUB; Dovecot's `subscriptions` file). */
  subscribed: string[];
  byFolder: Record<string, FolderView>;
}

/** What a client caches about the mailbox: folders, and per folder UIDVALIDITY, UIDNEXT, UIDs and flags. */
async function view(c: ImapFlow): Promise<View> {
  const list = (await c.list()).filter((f) => !f.flags.has('\\Noselect'));
  const folders = list.map((f) => f.path).sort();
  const subscribed = list.filter((f) => f.subscribed).map((f) => f.path).sort();
  const byFolder: Record<string, FolderView> = {};
  for (const f of list) {
    const box = await c.mailboxOpen(f.path, { readOnly: true });
    const messages: [number, string[]][] = [];
    if (box.exists > 0) {
      for await (const m of c.fetch('1:*', { uid: true, flags: true })) {
        messages.push([m.uid, [...(m.flags ?? [])].filter((x) => x !== '\\Recent').sort()]);
      }
    }
    messages.sort((a, b) => a[0] - b[0]);
    byFolder[f.path] = { uidValidity: String(box.uidValidity), uidNext: box.uidNext, messages };
    await c.mailboxClose();
  }
  return { folders, subscribed, byFolder };
}

async function withClient<T>(port: number, fn: (c: ImapFlow) => Promise<T>): Promise<T> {
  const c = client(port);
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.logout();
  }
}

/** The LIST response as bytes on the wire: names must be modified UTF-7 there (RFC 3501 §5.1.3). */
async function rawList(port: number): Promise<string> {
  const s = connect(port, '127.0.0.1');
  let data = '';
  s.on('data', (d: Buffer) => (data += d.toString('latin1')));
  const until = async (re: RegExp) => {
    const deadline = Date.now() + 5000;
    while (!re.test(data)) {
      if (Date.now() > deadline) throw new Error(`timeout waiting for ${re}: ${data}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  await until(/^\* OK/m);
  s.write(`a LOGIN ${LOGIN} "${PASSWORD}"\r\nb LIST "" "*"\r\nc LOGOUT\r\n`);
  await until(/^c OK/m);
  s.destroy();
  return data;
}

const msg = (subject: string) => `From: anna@example.com\r\nTo: john@example.com\r\nSubject: ${subject}\r\n\r\nHello.\r\n`;

const lettersOf = (dirPath: string): string => readFileSync(join(dirPath, 'dovecot-keywords'), 'utf8');

test('a Maildir moves between Dovecot and postern keeping UIDVALIDITY, UIDs, keywords and non-ASCII folder names', { timeout: 120_000 }, async () => {
  const maildir = join(mailRoot, 'users', LOGIN, 'Maildir');

  // ---- 1. Dovecot writes -----------------------------------------------------------------------------------------
  await dovecot.start();
  const fromDovecot = await withClient(dovecot.port, async (c) => {
    await c.mailboxCreate('Entwürfe');
    await c.mailboxCreate('Café/Sub');
    await c.mailboxSubscribe('Entwürfe');
    await c.mailboxSubscribe('Café/Sub');
    await c.append('INBOX', msg('one'), ['\\Seen', '$Forwarded', 'Work']);
    await c.append('INBOX', msg('two'), ['NonJunk']);
    await c.append('INBOX', msg('three'), []);
    await c.append('INBOX', msg('four'), ['\\Flagged', 'Work']);
    await c.append('Entwürfe', msg('draft'), ['\\Draft', '$Label1']);
    await c.append('Café/Sub', msg('café'), ['$Label2']);
    // UIDs with a gap, so that "1, 2, 3 again" cannot pass for "the same UIDs".
    await c.mailboxOpen('INBOX');
    await c.messageDelete('2', { uid: true });
    await c.mailboxClose();
    return view(c);
  });
  const dovecotWire = await rawList(dovecot.port);
  await dovecot.stop();

  assert.deepEqual(fromDovecot.byFolder.INBOX!.messages, [
    [1, ['$Forwarded', 'Work', '\\Seen'].sort()],
    [3, []],
    [4, ['Work', '\\Flagged'].sort()],
  ]);
  assert.deepEqual(fromDovecot.subscribed, ['Café/Sub', 'Entwürfe', 'INBOX']); // imapflow counts INBOX always
  assert.match(dovecotWire, /\* LIST \([^)]*\) "\/" "?Entw&APw-rfe"?\r\n/);
  // Stored as Dovecot stores them: modified UTF-7, '.' between levels.
  assert.ok(existsSync(join(maildir, '.Entw&APw-rfe', 'cur')), 'Dovecot made .Entw&APw-rfe');
  assert.ok(existsSync(join(maildir, '.Caf&AOk-.Sub', 'cur')), 'Dovecot made .Caf&AOk-.Sub');

  // ---- postern reads what Dovecot wrote ---------------------------------------------------------------------------
  let postern = await startPostern();
  const seenByPostern = await withClient(postern.port, view);
  const posternWire = await rawList(postern.port);
  assert.deepEqual(seenByPostern, fromDovecot, 'postern sees what Dovecot showed');
  assert.match(posternWire, /\* LIST \([^)]*\) "\/" "Entw&APw-rfe"\r\n/);
  assert.match(posternWire, /\* LIST \([^)]*\) "\/" "Caf&AOk-\/Sub"\r\n/);

  // ---- 2. postern writes -----------------------------------------------------------------------------------------
  const fromPostern = await withClient(postern.port, async (c) => {
    await c.mailboxOpen('INBOX');
    await c.append('INBOX', msg('five'), ['\\Answered', 'Project', 'work']);
    await c.messageFlagsAdd('3', ['NonJunk', '$MDNSent'], { uid: true });
    await c.messageFlagsRemove('1', ['Work'], { uid: true });
    await c.mailboxClose();
    await c.mailboxCreate('Übersicht');
    await c.mailboxCreate('Café/Entwürfe');
    await c.mailboxSubscribe('Übersicht');
    await c.mailboxUnsubscribe('Entwürfe');
    await c.append('Übersicht', msg('overview'), ['$Label3', '\\Seen']);
    await c.append('Entwürfe', msg('second draft'), ['$Label1', 'Project']);
    return view(c);
  });
  await postern.close();
  assert.deepEqual(fromPostern.subscribed, ['Café/Entwürfe', 'Café/Sub', 'INBOX', 'Übersicht']); // imapflow subscribes what it creates
  assert.deepEqual(fromPostern.byFolder.INBOX!.messages.map(([u]) => u), [1, 3, 4, 5], 'the APPEND got Dovecot\'s next UID');
  assert.ok(existsSync(join(maildir, '.&ANw-bersicht', 'cur')), 'postern made .&ANw-bersicht, as Dovecot would');
  assert.ok(existsSync(join(maildir, '.Caf&AOk-.Entw&APw-rfe', 'cur')), 'postern made .Caf&AOk-.Entw&APw-rfe');
  assert.match(lettersOf(maildir), /^0 \$Forwarded\n1 Work\n2 NonJunk\n(\d+ .+\n)*\d+ Project\n/, 'new keywords added to Dovecot\'s list');

  await dovecot.start();
  const seenByDovecot = await withClient(dovecot.port, view);
  assert.deepEqual(seenByDovecot, fromPostern, `Dovecot sees what postern showed\n${dovecot.log(10)}`);

  // ---- 3. Dovecot continues postern's UIDs ------------------------------------------------------------------------
  const next = await withClient(dovecot.port, async (c) => {
    const res = await c.append('INBOX', msg('six'), ['Project']);
    return res;
  });
  await dovecot.stop();
  assert.ok(next, 'APPENDUID');
  assert.equal(String(next.uidValidity), fromPostern.byFolder.INBOX!.uidValidity);
  assert.equal(next.uid, fromPostern.byFolder.INBOX!.uidNext);

  postern = await startPostern();
  const last = await withClient(postern.port, view);
  await postern.close();
  assert.deepEqual(last.byFolder.INBOX!.messages.at(-1), [next.uid, ['Project']]);
  assert.equal(last.byFolder.INBOX!.uidValidity, fromDovecot.byFolder.INBOX!.uidValidity, 'UIDVALIDITY never changed');
});
