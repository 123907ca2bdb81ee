/**
 * imap.workers: a plain connection's LOGIN moves it to the mailbox's home worker (src/imap/workers.ts homeSlot,
 * ImapSession.handOff / adopt), so that all sessions of one mailbox are served by one process. What is proved here:
 * sessions of one user opened one after another all land on one worker although the primary spreads connections
 * over both; two users with different home slots are served by different workers; a command sent the moment the
 * moved LOGIN is answered is never lost (the socket stops reading before it is sent); logins at the same moment,
 * whose handles Node queues behind each other, all complete; a command pipelined behind
 * the LOGIN keeps the session where it is, served; a failed LOGIN moves nothing; sessions on the home worker see
 * each other's changes.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { homeSlot } from '../../src/imap/workers.ts';
import { RawImap } from '../helpers/raw-imap.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { waitFor } from '../helpers/wait.ts';

const PASS = 'Corp!Passw0rd';
const T = 60_000;

const msg = (subject: string) => `From: anna@example.com\r\nTo: john@example.com\r\nSubject: ${subject}\r\n\r\nbody of ${subject}\r\n`;

describe('IMAP workers: a login moves to the mailbox home worker', () => {
  let server: TestServer;
  const total = () => [...server.imapWorkers!.sessionsByPid().values()].reduce((x, y) => x + y, 0);
  const counts = () => [...server.imapWorkers!.sessionsByPid().values()].sort((a, b) => b - a);
  const noSessions = () => waitFor('no sessions left', () => total() === 0, { timeoutMs: T });

  async function login(user: string, tag = 'l1'): Promise<RawImap> {
    const c = await RawImap.connect(server.ports.imap);
    c.send(`${tag} LOGIN ${user} "${PASS}"\r\n`);
    assert.match(await c.until(new RegExp(`^${tag} (OK|NO|BAD).*\\r\\n`, 'm'), T), new RegExp(`^${tag} OK \\[CAPABILITY [^\\]]*\\] Logged in`, 'm'));
    return c;
  }

  async function logout(cs: RawImap[]): Promise<void> {
    await Promise.all(
      cs.map(async (c) => {
        c.send('z LOGOUT\r\n');
        await c.until(/^z OK.*\r\n/m, T).catch(() => undefined);
        c.socket.destroy();
      }),
    );
  }

  before(async () => {
    server = await startTestServer({ imap: { workers: 2 } });
    server.core.settings.set('mailbox.allowUnencrypted', true);
  });
  after(() => server?.close());

  it('sessions of one user opened one after another are all served by one worker', async () => {
    await noSessions();
    const cs: RawImap[] = [];
    try {
      for (let i = 0; i < 4; i++) {
        cs.push(await login('john.smith'));
        // Each new connection goes to the worker with fewer sessions, so half of them land on the other worker.
        await waitFor(`session ${i + 1} counted`, () => total() === i + 1, { timeoutMs: T });
      }
      assert.deepEqual(counts(), [4, 0]);
      // They work where they are: an APPEND by one reaches another one's IDLE.
      for (const [i, c] of cs.entries()) assert.match(await c.command(`s${i}`, 'SELECT INBOX'), /OK \[READ-WRITE\]/);
      cs[0]!.send('i1 IDLE\r\n');
      await cs[0]!.until(/^\+ .*\r\n/m, T);
      const m = msg('seen by the other session');
      cs[1]!.send(`a1 APPEND INBOX {${Buffer.byteLength(m)}+}\r\n${m}\r\n`);
      assert.match(await cs[1]!.until(/^a1 (OK|NO|BAD).*\r\n/m, T), /^a1 OK \[APPENDUID \d+ 1\]/m);
      await cs[0]!.until(/^\* 1 EXISTS\r\n/m, T);
      cs[0]!.send('DONE\r\n');
      await cs[0]!.until(/^i1 OK.*\r\n/m, T);
    } finally {
      await logout(cs);
    }
  });

  it('two users with different home slots are served by different workers', async () => {
    await noSessions();
    // Users of the fixture with different home slots (their objectGUIDs, as the directory gives them).
    const logins = ['john.smith', 'anna.bianchi', 'mario.rossi', 'laura.verdi', 'paolo.neri', 'giulia.gallo'];
    const slots = new Map<number, string>();
    for (const l of logins) {
      const u = await server.core.auth.findUser(l);
      assert.ok(u, l);
      slots.set(homeSlot(u, 2), l);
    }
    assert.equal(slots.size, 2, 'the fixture has users on both slots');
    const [a, b] = [slots.get(0)!, slots.get(1)!];
    const cs: RawImap[] = [];
    try {
      // Three sessions of one and one of the other: the least-sessions rule alone would make it two and two.
      for (const user of [a, b, a, a]) {
        cs.push(await login(user));
        await waitFor(`${cs.length} sessions counted`, () => total() === cs.length, { timeoutMs: T });
      }
      assert.deepEqual(counts(), [3, 1]);
    } finally {
      await logout(cs);
    }
  });

  it('a command sent the moment a moved login is answered is served (nothing read is lost)', async () => {
    await noSessions();
    for (let i = 0; i < 10; i++) {
      const c = await RawImap.connect(server.ports.imap);
      try {
        let sent = false;
        // The next commands go out from the data handler that sees the tagged OK, before anything else runs.
        c.socket.on('data', (d: Buffer) => {
          if (!sent && /^l1 OK/m.test(d.toString('latin1'))) {
            sent = true;
            c.socket.write('n1 NOOP\r\ns1 SELECT INBOX\r\n');
          }
        });
        c.send(`l1 LOGIN laura.verdi "${PASS}"\r\n`);
        await c.until(/^l1 OK.*\r\n/m, T);
        await c.until(/^n1 OK.*\r\n/m, T);
        assert.match(await c.until(/^s1 (OK|NO|BAD).*\r\n/m, T), /^s1 OK \[READ-WRITE\]/m);
      } finally {
        await logout([c]);
      }
    }
  });

  it('logins of one user at the same moment all complete (handles queued behind each other are not lost)', async () => {
    await noSessions();
    // Several handoffs from one worker at once: a handle sent while the one before awaits its ACK is queued by Node.
    const cs = await Promise.all(Array.from({ length: 8 }, () => login('mario.rossi')));
    try {
      await waitFor('8 sessions counted', () => total() === 8, { timeoutMs: T });
      assert.deepEqual(counts(), [8, 0]);
      for (const [i, c] of cs.entries()) assert.match(await c.command(`n${i}`, 'NOOP'), /OK/);
    } finally {
      await logout(cs);
    }
  });

  it('a command pipelined behind the LOGIN keeps the session where it is, and it is served', async () => {
    await noSessions();
    const cs: RawImap[] = [];
    try {
      for (let i = 0; i < 4; i++) {
        const c = await RawImap.connect(server.ports.imap);
        cs.push(c);
        c.send(`l1 LOGIN paolo.neri "${PASS}"\r\ns1 SELECT INBOX\r\nn1 NOOP\r\n`);
        await c.until(/^l1 OK.*\r\n/m, T);
        assert.match(await c.until(/^s1 (OK|NO|BAD).*\r\n/m, T), /^s1 OK \[READ-WRITE\]/m);
        await c.until(/^n1 OK.*\r\n/m, T);
        await waitFor(`${i + 1} sessions counted`, () => total() === i + 1, { timeoutMs: T });
      }
      // Not moved: the primary's spreading stands (two on each worker).
      assert.deepEqual(counts(), [2, 2]);
    } finally {
      await logout(cs);
    }
  });

  it('a failed LOGIN moves nothing and the session can try again', async () => {
    await noSessions();
    const c = await RawImap.connect(server.ports.imap);
    try {
      c.send('l1 LOGIN john.smith "wrong"\r\n');
      assert.match(await c.until(/^l1 (OK|NO|BAD).*\r\n/m, T), /^l1 NO \[AUTHENTICATIONFAILED\]/m);
      c.send(`l2 LOGIN john.smith "${PASS}"\r\n`);
      assert.match(await c.until(/^l2 (OK|NO|BAD).*\r\n/m, T), /^l2 OK/m);
      assert.match(await c.command('s1', 'SELECT INBOX'), /OK \[READ-WRITE\]/);
    } finally {
      await logout([c]);
    }
  });
});
