/**
 * Memory of idle IDLE connections over TLS (issue 11: 10,000 in at most 600 MB RSS): `postern serve` with an
 * implicit-TLS IMAP listener (its self-signed certificate), N connections each logged in, INBOX selected and in
 * IDLE; the server's RSS (from /proc) before and after, per connection.
 *
 * The server allows 50 connections per client address and 20 sessions per user: the clients come from 127.0.0.2 …
 * (Linux answers the whole 127/8 on loopback) and log in as user1 … userN/20. Size: POSTERN_BENCH_IMAP_IDLE_TLS
 * (10000). Nothing here asserts.
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tcpConnect } from 'node:net';
import { connect, type TLSSocket } from 'node:tls';
import { memoryOf } from './dovecot.ts';
import { PASSWORD, startPosternSide, writeLdif } from './imap-load.ts';
import { table } from './lib.ts';

const N = Number(process.env.POSTERN_BENCH_IMAP_IDLE_TLS ?? 10_000);
/** The node options of package.json's `start` script (before bin/postern.js). */
const SERVER_NODE_ARGS = startScriptNodeArgs();

function startScriptNodeArgs(): string[] {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { scripts: { start: string } };
  const words = pkg.scripts.start.split(/\s+/);
  return words.slice(1, words.indexOf('bin/postern.js'));
}
const PER_ADDRESS = 50;
const PER_USER = 20;

/** One client: connect, LOGIN, SELECT INBOX, IDLE; resolves once the server's continuation arrived. */
function idleClient(port: number, localAddress: string, user: string): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = connect({ socket: tcpConnect({ port, host: '127.0.0.1', localAddress }), rejectUnauthorized: false });
    let buf = '';
    let step = 0;
    const timer = setTimeout(() => reject(new Error(`idle client ${user}@${localAddress}: timeout at step ${step}: ${buf.slice(-200)}`)), 120_000);
    s.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    s.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      if (step === 0 && buf.includes('\r\n')) {
        step = 1;
        buf = '';
        s.write(`a LOGIN ${user} "${PASSWORD}"\r\n`);
      } else if (step === 1 && /^a (OK|NO|BAD)/m.test(buf)) {
        if (!/^a OK/m.test(buf)) return reject(new Error(`login ${user}: ${buf}`));
        step = 2;
        buf = '';
        s.write('b SELECT INBOX\r\n');
      } else if (step === 2 && /^b OK/m.test(buf)) {
        step = 3;
        buf = '';
        s.write('c IDLE\r\n');
      } else if (step === 3 && /^\+/m.test(buf)) {
        step = 4;
        buf = '';
        clearTimeout(timer);
        resolve(s);
      }
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function benchImapIdleTls(root: string): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'postern-bench-imapidle-'));
  chmodSync(dir, 0o755);
  const users = Math.max(1, Math.ceil(N / PER_USER));
  writeLdif(join(dir, 'users.ldif'), users);
  // As `npm start` and the Docker image run it (package.json): the V8 flags are part of the memory measured.
  const side = await startPosternSide(root, dir, 'idle', { secure: true, nodeArgs: SERVER_NODE_ARGS });
  const clients: TLSSocket[] = [];
  try {
    // Warm-up through the same path (code loaded, caches filled) before the baseline.
    for (let i = 0; i < 20; i++) clients.push(await idleClient(side.port, '127.0.0.2', `user${(i % users) + 1}`));
    for (const c of clients.splice(0)) c.destroy();
    await sleep(2000);
    const before = memoryOf(side.pid);
    const t0 = Date.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: 100 }, async () => {
        while (next < N) {
          const i = next++;
          const a = Math.floor(i / PER_ADDRESS);
          const local = `127.0.${2 + Math.floor(a / 250)}.${2 + (a % 250)}`;
          clients.push(await idleClient(side.port, local, `user${(i % users) + 1}`));
        }
      }),
    );
    const seconds = (Date.now() - t0) / 1000;
    await sleep(5000);
    const after = memoryOf(side.pid);
    const per = (after.rss - before.rss) / N;
    return [
      `IDLE over TLS (implicit TLS, node ${SERVER_NODE_ARGS.join(' ')} bin/postern.js serve): ${N} connections logged in, INBOX selected, in IDLE; opened in ${seconds.toFixed(1)} s`,
      table([
        ['', 'RSS', 'PSS'],
        ['before', `${(before.rss / 1024).toFixed(1)} MiB`, `${(before.pss / 1024).toFixed(1)} MiB`],
        ['after', `${(after.rss / 1024).toFixed(1)} MiB`, `${(after.pss / 1024).toFixed(1)} MiB`],
        ['per connection', `${per.toFixed(1)} KiB`, `${((after.pss - before.pss) / N).toFixed(1)} KiB`],
      ]),
      `Whole process with ${N}: ${(after.rss / 1024).toFixed(0)} MiB RSS (goal: at most 600 MB for 10,000).`,
    ].join('\n');
  } finally {
    for (const c of clients) c.destroy();
    await side.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
