/**
 * Starts a whole postern server in-process on port 0 with a fresh dataDir, for protocol and integration tests.
 * The directory defaults to the embedded LDIF (fixtures/ad/corp.ldif); pass `directory: adDirectory('AD')`
 * (test/helpers/cli.ts) for the Samba DC. Mail domains example.com and example.org are local unless `domains`
 * says otherwise. Retries are fast (queue.retryMinSeconds 0.2) so tests can watch them.
 */
import { mkdtempSync, readdirSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig, type LoadedConfig } from '../../src/config/load.ts';
import { createLogger, silentLogger } from '../../src/lib/logger.ts';
import { startServer, type Server } from '../../src/server.ts';
import { ROOT } from './cli.ts';

export interface TestServer extends Server {
  config: LoadedConfig;
  dataDir: string;
  /** Files in new/ of a user's (or `shared:group`'s) Maildir folder, read as text. */
  inbox(owner: string, folder?: string): string[];
  /** Waits until `owner` has at least `n` messages in the folder (default INBOX), or throws after `ms`. */
  waitForMail(owner: string, n?: number, opts?: { folder?: string; ms?: number }): Promise<string[]>;
}

export async function startTestServer(over: Record<string, unknown> = {}, opts: { domains?: string[]; log?: boolean; filters?: boolean; logStream?: NodeJS.WritableStream } = {}): Promise<TestServer> {
  const dataDir = mkdtempSync(join(tmpdir(), 'postern-srv-'));
  const config = parseConfig(
    {
      hostname: 'mx.example.com',
      dataDir,
      directory: { type: 'ldif', file: join(ROOT, 'fixtures/ad/corp.ldif') },
      listeners: {
        smtp: { port: 0, host: '127.0.0.1' },
        submission: { port: 0, host: '127.0.0.1' },
        smtps: { port: 0, host: '127.0.0.1' },
        imap: { port: 0, host: '127.0.0.1' },
        imaps: { port: 0, host: '127.0.0.1' },
        pop3: { port: 0, host: '127.0.0.1' },
        pop3s: { port: 0, host: '127.0.0.1' },
        admin: { port: 0, host: '127.0.0.1' },
        http: { port: 0, host: '127.0.0.1' },
        https: { port: 0, host: '127.0.0.1' },
        managesieve: { port: 0, host: '127.0.0.1' },
      },
      queue: { retryMinSeconds: 0.2, retryMaxSeconds: 1, scanIntervalSeconds: 0.2 },
      auth: { failureDelayMs: 0 },
      // POSTERN_TEST_IMAP_WORKERS=2 runs the IMAP tests of this fixture against worker processes (imap.workers).
      ...(process.env.POSTERN_TEST_IMAP_WORKERS ? { imap: { workers: Number(process.env.POSTERN_TEST_IMAP_WORKERS) } } : {}),
      ...over,
      // A test that lists its own listeners still gets admin, http, https and managesieve on port 0 unless it says
      // otherwise: their defaults (8443, 8080, 8444, 24190) would collide between test files running at once.
      ...(over.listeners
        ? {
            listeners: {
              admin: { port: 0, host: '127.0.0.1' },
              http: { port: 0, host: '127.0.0.1' },
              https: { port: 0, host: '127.0.0.1' },
              managesieve: { port: 0, host: '127.0.0.1' },
              ...(over.listeners as object),
            },
          }
        : {}),
    },
    '(test)',
    ROOT,
  );
  const log = opts.logStream
    ? createLogger('debug', opts.logStream)
    : opts.log || process.env.POSTERN_TEST_LOG
      ? createLogger(process.env.POSTERN_TEST_LOG ?? 'debug')
      : silentLogger;
  const server = await startServer(config, log);
  if (!opts.filters) {
    // No clamd/spamd in the protocol tier: those filters are on by default and would answer every message 451.
    // Tests of the filters pass `filters: true` and point config clamav/spamassassin at the harness daemons.
    server.core.settings.set('filter.antivirus', false);
    server.core.settings.set('filter.spam', false);
  }
  for (const name of opts.domains ?? ['example.com', 'example.org']) {
    if (!server.core.settings.getDomain(name)) server.core.settings.addDomain({ name, type: 'local' });
  }
  const dirOf = (owner: string, folder = 'INBOX') => {
    const o = owner.startsWith('shared:') ? ({ kind: 'shared', group: owner.slice(7) } as const) : ({ kind: 'user', login: owner } as const);
    return join(server.store.folderPath(o, folder), 'new');
  };
  const inbox = (owner: string, folder?: string) => {
    const dir = dirOf(owner, folder);
    if (!existsSync(dir)) return [];
    return readdirSync(dir)
      .sort()
      .map((f) => readFileSync(join(dir, f), 'utf8'));
  };
  return {
    ...server,
    config,
    dataDir,
    inbox,
    async waitForMail(owner, n = 1, o = {}) {
      const deadline = Date.now() + (o.ms ?? 5000);
      for (;;) {
        const mails = inbox(owner, o.folder);
        if (mails.length >= n) return mails;
        if (Date.now() > deadline) throw new Error(`${owner}: ${mails.length} of ${n} messages after ${o.ms ?? 5000} ms`);
        await new Promise((r) => setTimeout(r, 25));
      }
    },
  };
}
