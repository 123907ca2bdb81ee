/**
 * What the SMTP hooks share: their dependencies, the per-listener role, and the per-session state that
 * smtp-server's session object does not carry.
 */
import type { Srs } from '../delivery/srs.js';
import type { SMTPServerSession } from 'smtp-server';
import type { Authenticator } from '../auth/authenticator.js';
import type { Directory, UserEntry } from '../directory/types.js';
import type { Logger } from '../lib/logger.js';
import type { Resolver } from '../resolver/resolver.js';
import type { Settings } from '../settings/store.js';
import { SmtpError } from '../lib/errors.js';
import { inNetworks } from '../lib/networks.js';
import type { QueueEnvelope } from '../queue/types.js';
import type { FilterPipeline } from '../filters/pipeline.js';
import type { FilterContext } from '../filters/types.js';
import type { SmtpStats } from './stats.js';
import type { TraceRecorder } from '../trace/types.js';

export type ListenerRole = 'smtp' | 'submission' | 'smtps';

export interface SmtpDeps {
  hostname: string;
  settings: Settings;
  resolver: Resolver;
  directory: Directory;
  auth: Authenticator;
  log: Logger;
  limits: { maxRecipients: number; errorLimit: number };
  /** Commits the message and envelope to disk (fsynced) and returns the queue id; the 250 waits for it. */
  enqueue(message: Buffer, envelope: Omit<QueueEnvelope, 'attempts' | 'nextAttemptAt' | 'size'>): Promise<string>;
  newQueueId(): string;
  /** The content filters (src/filters); absent in tests that exercise the SMTP policy alone. */
  filters?: FilterPipeline;
  /** Counters and recent refusals for /metrics and the dashboard (in an SMTP worker: sent to the main process). */
  stats?: Pick<SmtpStats, 'countReceived' | 'countRejected'>;
  /** Sender Rewriting Scheme: bounces to our SRS addresses are accepted (config srs.enabled). */
  srs?: Srs;
  /** Messages and recipients per hour of authenticated users and their client addresses (src/limits). */
  sendLimits?: SendLimitsPort;
  /** Message trace (src/trace): received, refused after receipt, discarded. */
  trace?: TraceRecorder;
}

/** Who a send limit counts (limitSubject). */
export interface LimitSubject {
  id: string;
  login?: string;
  ip: string;
  log: Logger;
}

/**
 * What the hooks need of the send limits (src/limits/send-limits.ts `SendLimits` fits). In an SMTP worker process
 * (smtp.workers) the checks are a round trip to the main process, which holds the one set of counters: the limits
 * stay exact however the sessions of one user are spread over the workers.
 */
export interface SendLimitsPort {
  checkMail(session: LimitSubject): SmtpError | null | Promise<SmtpError | null>;
  checkRcpt(session: LimitSubject): SmtpError | null | Promise<SmtpError | null>;
  accepted(sessionId: string): void;
  release(sessionId: string): void;
}

export interface SessionState {
  role: ListenerRole;
  log: Logger;
  user?: UserEntry;
  errors: number;
  /** Tags the filter stages set for the current transaction (reset at each MAIL FROM). */
  tags: Record<string, unknown>;
  /** Header fields `mark` verdicts of the connect/mail/rcpt phases asked for, added at DATA. */
  marks: [string, string][];
}

/** Per-session state keyed by smtp-server's session id. */
export class Sessions {
  private readonly map = new Map<string, SessionState>();
  get(session: SMTPServerSession): SessionState {
    const s = this.map.get(session.id);
    if (!s) throw new Error(`unknown SMTP session ${session.id}`);
    return s;
  }
  /** The state of a session, if it has one (a connection refused in onConnect has none). */
  find(session: SMTPServerSession): SessionState | undefined {
    return this.map.get(session.id);
  }
  set(session: SMTPServerSession, state: SessionState): void {
    this.map.set(session.id, state);
  }
  delete(session: SMTPServerSession): void {
    this.map.delete(session.id);
  }
  get size(): number {
    return this.map.size;
  }
}

/** "Allow relay from IP addresses" (printers, scanners, legacy apps). */
export function mayRelayByAddress(settings: Settings, ip: string): boolean {
  return inNetworks(settings.get('smtp.relayFrom'), ip);
}

/** Inside the local network: authenticated, or a relay-from or trusted-network address. Loopback is not special. */
export function fromLocalNetwork(settings: Settings, ip: string, authenticated: boolean): boolean {
  return authenticated || mayRelayByAddress(settings, ip) || inNetworks(settings.get('smtp.trustedNetworks'), ip);
}

/**
 * Turns a refusal into the error smtp-server sends, counting it: past `errorLimit` errors the session is closed
 * with 421 (Postfix's smtpd_hard_error_limit), so a dictionary attack on RCPT TO costs the attacker a reconnect.
 */
export function refuse(state: SessionState, limit: number, err: SmtpError): SmtpError {
  state.errors++;
  if (state.errors >= limit) return new SmtpError(421, '4.7.0', `${err.text}; too many errors, closing connection`);
  return err;
}

/** The filter context of a session at its current point (RFC 5321 §3.3: one transaction after another). */
export function filterContext(session: SMTPServerSession, state: SessionState, extra: Partial<FilterContext> = {}): FilterContext {
  return {
    id: session.id,
    client: {
      address: session.remoteAddress,
      helo: session.hostNameAppearsAs || undefined,
      hostname: session.clientHostname,
      user: state.user?.login,
      listener: state.role,
    },
    from: session.envelope.mailFrom ? session.envelope.mailFrom.address : undefined,
    recipients: session.envelope.rcptTo.map((r) => r.address),
    tags: state.tags,
    ...extra,
  };
}

/** Who a send limit counts: the session, its user and its client address. */
export function limitSubject(session: SMTPServerSession, state: SessionState): LimitSubject {
  return { id: session.id, login: state.user?.login, ip: session.remoteAddress, log: state.log };
}

/** Runs one filter phase; a refusal comes back as the SmtpError to send, marks are kept for DATA. */
export async function runFilters(deps: SmtpDeps, state: SessionState, phase: 'connect' | 'mail' | 'rcpt', ctx: FilterContext): Promise<SmtpError | null> {
  if (!deps.filters) return null;
  const r = await deps.filters.run(phase, ctx);
  state.marks.push(...r.headers);
  if (r.action === 'reject' || r.action === 'tempfail') {
    const reply = r.reply ?? (r.action === 'reject' ? { code: 554, enhanced: '5.7.1', text: 'Rejected by policy' } : { code: 451, enhanced: '4.7.1', text: 'Try again later' });
    return new SmtpError(reply.code, reply.enhanced, reply.text);
  }
  return null;
}
