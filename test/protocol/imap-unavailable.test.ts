/**
 * A store that cannot answer for now (TempFailure: the cluster's PostgreSQL unreachable, issue 16) gives the IMAP
 * command `NO [UNAVAILABLE]` (RFC 5530 §3), not SERVERBUG and not a dropped connection; the same session works again
 * once the store does. The store is the in-memory one with a switch that makes it fail temporarily.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startImap, type ImapServer } from '../../src/imap/server.ts';
import { TempFailure } from '../../src/lib/errors.ts';
import { silentLogger } from '../../src/lib/logger.ts';
import type { FolderState } from '../../src/store/mailbox.ts';
import type { MailboxOwner } from '../../src/store/types.ts';
import { ldifAuth, PASSWORD } from '../helpers/imap-fixture.ts';
import { MemoryMailbox } from '../helpers/memory-mailbox.ts';
import { RawImap } from '../helpers/raw-imap.ts';

class FlakyMailbox extends MemoryMailbox {
  down = false;
  override async openFolder(owner: MailboxOwner, name: string): Promise<FolderState> {
    if (this.down) throw new TempFailure('state store (PostgreSQL) query: connect ECONNREFUSED');
    return super.openFolder(owner, name);
  }
}

let server: ImapServer;
const mailbox = new FlakyMailbox();

before(async () => {
  server = await startImap({
    port: 0,
    host: '127.0.0.1',
    secure: false,
    auth: ldifAuth(),
    mailbox,
    settings: { get: (key) => (key === 'mailbox.allowUnencrypted' ? true : key === 'mailbox.imap') },
    hostname: 'mail.example.com',
    log: silentLogger,
  });
});

after(() => server.close());

test('a store that fails temporarily answers NO [UNAVAILABLE]; the session goes on and works again', async () => {
  const c = await RawImap.login(server.port, 'john.smith', PASSWORD);
  mailbox.down = true;
  const r = await c.command('a1', 'SELECT INBOX');
  assert.match(r, /^a1 NO \[UNAVAILABLE\]/m, r);
  assert.doesNotMatch(r, /SERVERBUG/);
  mailbox.down = false;
  const ok = await c.ok('a2', 'SELECT INBOX');
  assert.match(ok, /^\* \d+ EXISTS/m);
  await c.ok('a3', 'LOGOUT');
  c.close();
});
