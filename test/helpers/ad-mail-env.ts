/**
 * A whole postern on the Samba AD DC with the real clamd and spamd test/run.ts starts, and one outside domain whose
 * MX is a capturing SMTP sink: the set-up of the end-to-end tests that follow a message from SMTP in to a remote
 * server (trace, out-of-office replies).
 */
import { TLS_FILES } from '../protocol/smtp-env.ts';
import { adDirectory, haveAd } from './cli.ts';
import { startDnsServer, type TestDnsServer } from './dns-server.ts';
import { startTestServer, type TestServer } from './server.ts';
import { startSmtpSink, type SmtpSink } from './smtp-sink.ts';

const env = process.env;

/** false when the Samba DC, clamd and spamd are there; else why the test is skipped. */
export const skipWithoutAdAndFilters: false | string =
  haveAd('AD') && env.POSTERN_TEST_CLAMD_PORT && env.POSTERN_TEST_SPAMD_PORT ? false : 'needs the Samba DC, clamd and spamd: run through test/run.ts';

export interface AdMailEnv {
  server: TestServer;
  /** The outside domain's MX. */
  sink: SmtpSink;
  dns: TestDnsServer;
  close(): Promise<void>;
}

/** Starts the sink, a DNS server giving `outsideDomain` an MX at the sink, and postern on AD with both filters. */
export async function startAdMailEnv(outsideDomain: string, timeouts: { clamdMs: number; spamdMs: number }): Promise<AdMailEnv> {
  const sink = await startSmtpSink();
  const dns = await startDnsServer({
    [outsideDomain]: { MX: [{ exchange: `mx.${outsideDomain}`, priority: 10 }] },
    [`mx.${outsideDomain}`]: { A: ['127.0.0.1'] },
  });
  const server = await startTestServer(
    {
      tls: TLS_FILES,
      directory: adDirectory('AD'),
      clamav: { host: env.POSTERN_TEST_CLAMD_HOST ?? '127.0.0.1', port: Number(env.POSTERN_TEST_CLAMD_PORT), timeoutMs: timeouts.clamdMs },
      spamassassin: { host: env.POSTERN_TEST_SPAMD_HOST ?? '127.0.0.1', port: Number(env.POSTERN_TEST_SPAMD_PORT), timeoutMs: timeouts.spamdMs },
      delivery: { remotePort: sink.port },
      dns: { servers: [dns.address], timeoutMs: 500 },
    },
    { filters: true },
  );
  return {
    server,
    sink,
    dns,
    async close() {
      await server.close();
      await sink.close();
      await dns.close();
    },
  };
}
