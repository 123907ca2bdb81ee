/**
 * Message trace (issue 13 item 6, Exchange's message tracking; DESIGN.md §8): every message's path through the
 * server as a list of events keyed by its queue id. The core components hold a `TraceRecorder` and call
 * `record(event)` at each step; the store (store.ts) batches the events and answers queries grouped per message.
 *
 * The events, in the order a message meets them:
 *   received   smtp/on-data: listener, client address, HELO, auth user, size, Message-ID, envelope
 *   filter     filters/pipeline: one per data-phase stage verdict (stage, action, reply, tags)
 *   rejected   smtp/on-data: refused after it was received (filter reject/tempfail, queue failure), the reply
 *   discarded  smtp/on-data: accepted with 250 and dropped (a virus with filter.antivirus.action discard)
 *   queued     queue/spool: committed to the spool (size, listener 'local' for a DSN)
 *   attempt    delivery/remote: one SMTP session to one host (host, tls, the reply per recipient)
 *   delivered  delivery/agent: stored in a mailbox (login or group, folder), or done another way (list expanded,
 *              forwarded, duplicate) with the reply that says so
 *   relayed    delivery/agent: accepted by a remote host (host, reply)
 *   deferred   delivery/agent, queue/scheduler: a temporary failure, retried later (reply)
 *   failed     delivery/agent: a permanent failure of one recipient (reply)
 *   expired    queue/scheduler: still pending at the end of the queue lifetime
 *   bounced    queue/scheduler: the failures were reported to the sender in a DSN (its queue id)
 *   completed  queue/scheduler: every recipient final, the message left the queue
 *   deleted    queue/spool: deleted from the queue by an admin (API or CLI), and by whom
 */

export const TRACE_EVENT_TYPES = [
  'received',
  'filter',
  'rejected',
  'discarded',
  'queued',
  'attempt',
  'delivered',
  'relayed',
  'deferred',
  'failed',
  'expired',
  'bounced',
  'completed',
  'deleted',
] as const;

export type TraceEventType = (typeof TRACE_EVENT_TYPES)[number];

export interface TraceEvent {
  queueId: string;
  type: TraceEventType;
  /** Epoch milliseconds; the time record() was called when absent. */
  at?: number;
  /** The message's Message-ID (received), without angle brackets. */
  messageId?: string;
  /** MAIL FROM ('' for <>), on received and queued. */
  from?: string;
  /** The envelope recipients (received, queued). */
  recipients?: string[];
  /** The one recipient a per-recipient event is about (attempt results are in detail). */
  rcpt?: string;
  /** Everything else the step knows: listener, client, user, size, stage, action, reply, host, mailbox, folder, dsnId, by. */
  detail?: Record<string, unknown>;
}

/** What the core components are given: record() is cheap and never throws (see TraceStore). */
export interface TraceRecorder {
  record(event: TraceEvent): void;
}

/** One event as a query returns it. */
export interface TraceEventRow {
  at: string;
  type: TraceEventType;
  rcpt?: string;
  detail: Record<string, unknown>;
}

/** One message's path: what it is and its events in the order they were recorded. */
export interface TracePath {
  queueId: string;
  messageId: string | null;
  from: string | null;
  recipients: string[];
  firstAt: string;
  lastAt: string;
  events: TraceEventRow[];
}

export interface TraceQuery {
  /** MAIL FROM, exact address (any case); '' finds DSNs and other mail from <>. */
  from?: string;
  /** A recipient, exact address (any case): an envelope recipient or one reached by expansion. */
  to?: string;
  queueId?: string;
  /** With or without angle brackets. */
  messageId?: string;
  /** Epoch ms: messages with an event at or after it. */
  since?: number;
  /** Epoch ms: messages with an event at or before it. */
  until?: number;
  /** At most this many messages, the last received first (default 50, at most 1000). */
  limit?: number;
}

export const DEFAULT_TRACE_LIMIT = 50;
export const MAX_TRACE_LIMIT = 1000;
