/**
 * Operations: `/healthz` (the process answers), `/readyz` (AD, clamd and spamd when their filter is on, the data
 * directory writable) and Prometheus `/metrics`. healthz and readyz need no credentials (load balancers and
 * orchestrators probe them; they say ok or not and which check failed, nothing more); /metrics needs the same
 * credentials as the API (Prometheus sends a Bearer token: `authorization: { credentials_file: … }`).
 */
import { randomBytes } from 'node:crypto';
import { unlink, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { clamdAddress } from '../../filters/clamav.js';
import { Spamc } from '../../filters/spamc.js';
import type { AdminDeps, App } from '../types.js';

const PROBE_MS = 2000;

type Check = { ok: boolean; detail?: string };

/** clamd's zPING → PONG, on its socket or TCP port. */
function pingClamd(deps: AdminDeps): Promise<void> {
  const a = clamdAddress(deps.config.clamav);
  return new Promise((resolve, reject) => {
    const sock = 'socket' in a ? connect(a.socket) : connect(a.port, a.host);
    let data = '';
    const done = (err?: Error) => {
      sock.destroy();
      if (err) reject(err);
      else resolve();
    };
    sock.setTimeout(PROBE_MS, () => done(new Error('timeout')));
    sock.on('error', (err) => done(err));
    sock.on('connect', () => sock.write('zPING\0'));
    sock.on('data', (b) => {
      data += b.toString('latin1');
      if (data.includes('PONG')) done();
    });
    sock.on('end', () => done(data.includes('PONG') ? undefined : new Error(`unexpected reply ${JSON.stringify(data.slice(0, 40))}`)));
  });
}

async function check(fn: () => Promise<string | void>): Promise<Check> {
  try {
    const detail = await fn();
    return detail ? { ok: true, detail } : { ok: true };
  } catch (err) {
    return { ok: false, detail: (err as Error).message };
  }
}

export async function readiness(deps: AdminDeps): Promise<Record<string, Check>> {
  const checks: Record<string, Promise<Check>> = {
    directory: check(async () => {
      const h = await deps.directory.health();
      if (h.backend === 'ldap' && !h.servers.some((s) => s.up)) {
        throw new Error(`no domain controller reachable: ${h.servers.map((s) => `${s.url} ${s.lastError ?? 'down'}`).join('; ')}`);
      }
      return `${h.backend}: ${h.servers.filter((s) => s.up).length}/${h.servers.length} up`;
    }),
    ...(deps.state?.type === 'postgres'
      ? {
          state: check(async () => {
            const h = await deps.state!.health();
            if (h && !h.ok) throw new Error(`PostgreSQL unreachable since ${h.since}: ${h.error ?? 'unknown error'}`);
            const nodes = await deps.state!.nodes();
            return `postgres: reachable; nodes: ${nodes.map((n) => `${n.id} ${n.address} ${n.version} ${n.alive ? 'up' : `gone since ${n.heartbeatAt}`}`).join(', ')}`;
          }),
        }
      : {}),
    disk: check(async () => {
      // The spool and the settings live in dataDir: a write that fails here fails there too.
      const probe = join(deps.config.dataDir, `.readyz-${randomBytes(6).toString('hex')}`);
      await writeFile(probe, 'ok');
      await unlink(probe);
    }),
  };
  if (deps.settings.get('filter.antivirus')) checks.clamd = check(() => pingClamd(deps));
  if (deps.settings.get('filter.spam')) {
    const sa = deps.config.spamassassin;
    checks.spamd = check(() => new Spamc({ host: sa.host, port: sa.port, timeoutMs: PROBE_MS }).ping());
  }
  const names = Object.keys(checks);
  const results = await Promise.all(Object.values(checks));
  return Object.fromEntries(names.map((n, i) => [n, results[i]]));
}

function esc(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** Prometheus text exposition format 0.0.4. */
export async function metricsText(deps: AdminDeps): Promise<string> {
  const lines: string[] = [];
  const metric = (name: string, type: 'gauge' | 'counter', help: string, samples: [Record<string, string>, number][]) => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, v] of samples) {
      const l = Object.entries(labels).map(([k, x]) => `${k}="${esc(x)}"`);
      lines.push(`${name}${l.length ? `{${l.join(',')}}` : ''} ${Number.isFinite(v) ? v : 0}`);
    }
  };
  const queue = await deps.spool.list();
  const cache = deps.directory.cacheStats();
  const health = await deps.directory.health();
  metric('postern_up', 'gauge', 'The server process is running.', [[{}, 1]]);
  metric('postern_queue_messages', 'gauge', 'Messages in the mail queue.', [[{}, queue.length]]);
  metric('postern_queue_bytes', 'gauge', 'Bytes of the messages in the mail queue.', [[{}, queue.reduce((n, e) => n + e.size, 0)]]);
  metric('postern_queue_recipients_pending', 'gauge', 'Recipients still to be delivered.', [
    [{}, queue.reduce((n, e) => n + e.recipients.filter((r) => r.state === 'pending').length, 0)],
  ]);
  metric('postern_queue_deferred_messages', 'gauge', 'Queued messages that had at least one delivery attempt.', [
    [{}, queue.filter((e) => e.attempts > 0).length],
  ]);
  metric('postern_queue_active_deliveries', 'gauge', 'Deliveries in progress.', [[{}, deps.scheduler.size.active]]);
  metric('postern_queue_enqueued_total', 'counter', 'Messages accepted into the queue since start.', [[{}, deps.spool.stats.enqueued]]);
  metric('postern_directory_cache_hits_total', 'counter', 'Directory lookups answered from the cache.', [[{}, cache.hits]]);
  metric('postern_directory_cache_misses_total', 'counter', 'Directory lookups sent to the directory.', [[{}, cache.misses]]);
  metric('postern_directory_cache_stale_served_total', 'counter', 'Cached entries served while the directory was unreachable.', [
    [{}, cache.staleServed],
  ]);
  metric('postern_directory_cache_entries', 'gauge', 'Entries in the directory cache.', [[{}, cache.size]]);
  metric(
    'postern_directory_server_up',
    'gauge',
    'Domain controller (or LDIF file) considered reachable.',
    health.servers.map((s) => [{ server: s.url }, s.up ? 1 : 0]),
  );
  const a = deps.activity?.counters;
  if (a) {
    metric('postern_queue_finished_total', 'counter', 'Messages that left the queue since start, by outcome.', [
      [{ outcome: 'done' }, a.finished],
      [{ outcome: 'deleted' }, a.deleted],
    ]);
    metric('postern_delivery_recipients_total', 'counter', 'Recipients of finished messages, by final state.', [
      [{ state: 'delivered' }, a.recipientsDelivered],
      [{ state: 'failed' }, a.recipientsFailed],
    ]);
    metric('postern_delivery_deferred_attempts_total', 'counter', 'Delivery attempts that left recipients for a retry.', [[{}, a.deferredAttempts]]);
    metric('postern_dsn_sent_total', 'counter', 'Delivery status notifications (bounces) sent.', [[{}, a.dsnSent]]);
    metric('postern_bcc_failed_total', 'counter', 'Always-Bcc copies that could not be delivered (no DSN names them).', [[{}, a.bccFailed]]);
  }
  if (deps.smtpSessions) metric('postern_smtp_sessions', 'gauge', 'SMTP sessions open, all listeners.', [[{}, deps.smtpSessions()]]);
  if (deps.imapSessions) metric('postern_imap_sessions', 'gauge', 'IMAP connections open, all listeners.', [[{}, deps.imapSessions()]]);
  if (deps.pop3Sessions) metric('postern_pop3_sessions', 'gauge', 'POP3 connections open, all listeners.', [[{}, deps.pop3Sessions()]]);
  if (deps.smtpStats) {
    const st = deps.smtpStats;
    metric('postern_smtp_messages_received_total', 'counter', 'Messages accepted (250 after DATA), by listener.', [...st.received].map(([listener, n]) => [{ listener }, n]));
    metric('postern_smtp_rejected_total', 'counter', 'SMTP refusals, by step and reply code.', [...st.rejected].map(([key, n]) => {
      const [stage, code, enhanced] = key.split(' ');
      return [{ stage, code, enhanced: enhanced ?? '' }, n];
    }));
  }
  if (deps.sendLimits) {
    const sl = deps.sendLimits;
    metric('postern_send_limit_refusals_total', 'counter', 'MAIL FROM / RCPT TO refused with 451 4.7.1 for a send limit, by reason.', [...sl.refusals].map(([reason, n]) => [{ reason }, n]));
    const over = sl.overLimitCounts();
    metric('postern_send_limit_users_over_limit', 'gauge', 'Authenticated users at their hourly send limit now.', [[{}, over.users]]);
    metric('postern_send_limit_addresses_over_limit', 'gauge', 'Client addresses at their hourly send limit now.', [[{}, over.ips]]);
  }
  return lines.join('\n') + '\n';
}

/** Routes that need no credentials. */
export function probeRoutes(app: App, deps: AdminDeps): void {
  app.get('/healthz', async () => ({ status: 'ok' }));

  app.get('/readyz', async (_req, reply) => {
    const checks = await readiness(deps);
    const ready = Object.values(checks).every((c) => c.ok);
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not ready', checks });
  });
}

export function metricsRoutes(app: App, deps: AdminDeps): void {
  app.get('/metrics', async (_req, reply) => {
    return reply.type('text/plain; version=0.0.4; charset=utf-8').send(await metricsText(deps));
  });
}
