import type { SMTPServerDataStream, SMTPServerSession } from 'smtp-server';
import { SmtpError, TempFailure } from '../lib/errors.js';
import { normalizeLineEndings } from './line-endings.js';
import { receivedHeader } from './received.js';
import { applyMarks } from '../filters/pipeline.js';
import { removeOurAuthResults } from '../filters/auth-results.js';
import { SPAM_HEADER_FIELDS } from '../filters/spamassassin.js';
import { messageIdOf } from '../trace/message-id.js';
import { filterContext, mayRelayByAddress, type Sessions, type SmtpDeps } from './session.js';

/** Fields only our filters may set: copies a sender wrote are dropped before ours are added. */
const OUR_FIELDS = [...SPAM_HEADER_FIELDS, 'X-Postern-Disclaimer'];

/** Counts Received fields in the header section (RFC 5321 §6.3: a looping message gathers them). */
export function countReceived(message: Buffer): number {
  const end = message.indexOf('\r\n\r\n');
  const header = message.subarray(0, end < 0 ? message.length : end).toString('latin1');
  return (header.match(/^Received:/gim) ?? []).length;
}

export interface OnDataOptions {
  hopLimit: number;
  /**
   * Changes applied to mail our users send (the domain disclaimer). Called for messages from authenticated or
   * relay-permitted clients only; returns the message to queue.
   */
  outgoing?: (message: Buffer, from: string) => Promise<Buffer> | Buffer;
}

/**
 * DATA: read the message, refuse what must not enter (over size, smuggling, looping), add our Received field,
 * and answer 250 only once message and envelope are fsynced in the queue (DESIGN.md §3 "Queue").
 */
export function makeOnData(deps: SmtpDeps, sessions: Sessions, opts: OnDataOptions) {
  return (stream: SMTPServerDataStream, session: SMTPServerSession, callback: (err?: Error | null, message?: string) => void): void => {
    const state = sessions.get(session);
    const chunks: Buffer[] = [];
    /** The queue id once the message is in the trace: a refusal after that point ends its path there. */
    let traced: string | undefined;
    const traceRefusal = (code: number, enhanced: string, text: string) => {
      if (traced) deps.trace?.record({ queueId: traced, type: 'rejected', detail: { reply: `${code} ${enhanced} ${text}` } });
    };
    stream.on('data', (c: Buffer) => {
      // Past the limit smtp-server keeps reading (to find the end of DATA) but we stop keeping it: nothing is stored.
      if (!stream.sizeExceeded) chunks.push(c);
    });
    stream.on('error', (err) => callback(err));
    stream.on('end', () => {
      accept(Buffer.concat(chunks))
        .then((id) => {
          // Counted only now, once the 250 is certain: a refused message costs the sender nothing (src/limits).
          deps.sendLimits?.accepted(session.id);
          callback(null, `2.0.0 Ok: queued as ${id}`);
        })
        .catch((err: unknown) => {
          deps.sendLimits?.release(session.id);
          if (err instanceof SmtpError) {
            state.log.info({ event: 'reject', stage: 'data', reply: err.message }, 'message rejected');
            traceRefusal(err.code, err.enhanced, err.text);
            deps.stats?.countRejected({ listener: state.role, client: session.remoteAddress, stage: 'data', from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '', to: session.envelope.rcptTo.map((r) => r.address).join(', '), reply: `${err.code} ${err.message}` });
            return callback(err);
          }
          const disk = (err as NodeJS.ErrnoException)?.code === 'ENOSPC' || ((err as Error)?.cause as NodeJS.ErrnoException)?.code === 'ENOSPC';
          state.log.error({ err }, 'message not queued');
          // RFC 5321 §4.2.5 / DESIGN.md §6: a full disk is 452, never 250-then-lose.
          const reply = disk ? new SmtpError(452, '4.3.1', 'Insufficient system storage') : new SmtpError(451, '4.3.0', 'Temporary failure storing the message, try again later');
          traceRefusal(reply.code, reply.enhanced, reply.text);
          callback(reply);
        });
    });

    async function accept(raw: Buffer): Promise<string> {
      if (stream.sizeExceeded) {
        throw new SmtpError(552, '5.3.4', 'Message size exceeds fixed maximum message size');
      }
      const normalized = normalizeLineEndings(raw);
      const { smuggling, bare } = normalized;
      // RFC 8601 §5: forged results under our authserv-id go before anything (filters, users) can read them.
      const { message: data, removed: forgedAuthResults } = removeOurAuthResults(normalized.data, deps.hostname);
      if (smuggling) {
        throw new SmtpError(554, '5.5.2', 'Message refused: bare <LF> or <CR> around a line with a single dot (SMTP smuggling)');
      }
      // Our own Received field counts (as in Postfix's cleanup, and as the delivery agent counts): a message that
      // reaches the limit with it is refused now rather than accepted and bounced (no backscatter).
      if (countReceived(data) + 1 >= opts.hopLimit) {
        throw new SmtpError(554, '5.4.6', 'Too many hops: mail forwarding loop');
      }
      const from = session.envelope.mailFrom ? session.envelope.mailFrom.address : '';
      const recipients = session.envelope.rcptTo.map((r) => r.address.toLowerCase());
      const id = deps.newQueueId();
      deps.trace?.record({
        queueId: id,
        type: 'received',
        messageId: messageIdOf(data),
        from,
        recipients,
        detail: { listener: state.role, client: session.remoteAddress, helo: session.hostNameAppearsAs || undefined, user: state.user?.login, tls: session.secure, size: data.length },
      });
      traced = id;
      // Built before the filters (DESIGN.md §6): they see the message as it will be delivered, our Received on top,
      // as Amavis gets it from Postfix — SpamAssassin's relay, DNSBL, SPF and trusted-network rules read it.
      const received = receivedHeader({
        helo: session.hostNameAppearsAs,
        clientHostname: session.clientHostname,
        clientAddress: session.remoteAddress,
        hostname: deps.hostname,
        queueId: id,
        secure: session.secure,
        authenticated: state.user !== undefined,
        esmtp: /^EHLO$/i.test(session.openingCommand || ''),
        recipient: recipients.length === 1 ? recipients[0] : undefined,
        tls: session.tlsOptions ? { protocol: session.tlsOptions.version, cipher: session.tlsOptions.name } : undefined,
      });
      // Content filters before the 250 (DESIGN.md §3): a refused message is refused to the sender's face.
      let message = data;
      let spam = false;
      if (deps.filters) {
        const ctx = filterContext(session, state, { id, message: Buffer.concat([Buffer.from(received, 'latin1'), data]), from, recipients });
        const r = await deps.filters.run('data', ctx);
        if (r.action === 'reject' || r.action === 'tempfail') {
          const reply = r.reply ?? (r.action === 'reject' ? { code: 554, enhanced: '5.7.1', text: 'Message refused by policy' } : { code: 451, enhanced: '4.7.1', text: 'Try again later' });
          throw new SmtpError(reply.code, reply.enhanced, reply.text);
        }
        if (r.action === 'discard') {
          // The seed's "infected messages are discarded": the sender gets the usual 250, nothing is kept.
          state.log.info({ event: 'discarded', queueId: id, from, to: recipients, tags: r.tags }, `discarded ${id}`);
          deps.trace?.record({ queueId: id, type: 'discarded', detail: { reply: '250 2.0.0 accepted and discarded' } });
          return id;
        }
        message = applyMarks(message, [...state.marks, ...r.headers], r.subject, { remove: OUR_FIELDS });
        spam = r.tags.spam === true;
      } else {
        message = applyMarks(message, state.marks, undefined, { remove: OUR_FIELDS });
      }
      const ours = state.user !== undefined || mayRelayByAddress(deps.settings, session.remoteAddress);
      if (ours && opts.outgoing) message = await opts.outgoing(message, from);
      const full = Buffer.concat([Buffer.from(received, 'latin1'), message]);
      try {
        await deps.enqueue(full, {
          id,
          from,
          recipients: recipients.map((address) => ({ address, origin: 'rcpt', state: 'pending', attempts: 0 })),
          receivedAt: new Date().toISOString(),
          ...(spam ? { spam: true } : {}),
          client: {
            address: session.remoteAddress,
            helo: session.hostNameAppearsAs || undefined,
            user: state.user?.login,
            listener: state.role,
          },
        });
      } catch (err) {
        if (err instanceof TempFailure) throw Object.assign(new Error(err.message), { cause: err.cause });
        throw err;
      }
      deps.stats?.countReceived(state.role);
      state.log.info(
        { event: 'queued', queueId: id, from, to: recipients, size: full.length, bareLineEndings: bare || undefined, forgedAuthResults: forgedAuthResults || undefined },
        `queued as ${id}`,
      );
      return id;
    }
  };
}
