/** The store's \Recent counter (RFC 3501 §2.3.2): the first UID no session claimed yet, kept per folder. */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { silentLogger } from '../../../src/lib/logger.ts';
import { MaildirMailbox } from '../../../src/store/maildir-mailbox.ts';
import { MaildirStore } from '../../../src/store/maildir.ts';

test('firstRecentUid starts at 1, only moves up when claimed, and is per folder and persistent', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'postern-recent-'));
  const store = new MaildirStore({ root: join(dir, 'mail'), hostname: 'mail.corp.example' });
  const open = () => new MaildirMailbox({ store, quotaBytes: () => 0, log: silentLogger });
  const mb = open();
  t.after(async () => {
    mb.close();
    await rm(dir, { recursive: true, force: true });
  });
  const alice = { kind: 'user' as const, login: 'alice' };
  await mb.createFolder(alice, 'Work');
  await mb.append(alice, 'INBOX', Buffer.from('Subject: 1\r\n\r\nx\r\n'), []);
  await mb.append(alice, 'INBOX', Buffer.from('Subject: 2\r\n\r\nx\r\n'), []);
  assert.equal(await mb.firstRecentUid(alice, 'INBOX'), 1);
  assert.equal(await mb.firstRecentUid(alice, 'INBOX', 3), 1, 'the claimer gets the old value');
  assert.equal(await mb.firstRecentUid(alice, 'INBOX'), 3);
  assert.equal(await mb.firstRecentUid(alice, 'INBOX', 2), 3, 'never moves down');
  assert.equal(await mb.firstRecentUid(alice, 'Work'), 1);
  const again = open();
  try {
    assert.equal(await again.firstRecentUid(alice, 'INBOX'), 3);
  } finally {
    again.close();
  }
});
