import type { SMTPServerDataStream, SMTPServerSession } from 'smtp-server';
import { SmtpError, TempFailure } from '../lib/errors.js';
import { normalizeLineEndings } from './line-endings.js';
import { receivedHeader } from './received.js';
import { fromLocalNetwork, mayRelayByAddress, type Sessions, type SmtpDeps } from './session.js';

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
    stream.on('data', (c: Buffer) => {
      // Past the limit smtp-server keeps reading (to find the end of DATA) but we stop keeping it: nothing is stored.
      if (!stream.sizeExceeded) chunks.push(c);
    });
    stream.on('error', (err) => callback(err));
    stream.on('end', () => {
      accept(Buffer.concat(chunks))
        .then((id) => callback(null, `2.0.0 Ok: queued as ${id}`))
        .catch((err: unknown) => {
          if (err instanceof SmtpError) {
            state.log.info({ event: 'reject', stage: 'data', reply: err.message }, 'message rejected');
            return callback(err);
          }
          const disk = (err as NodeJS.ErrnoException)?.code === 'ENOSPC' || ((err as Error)?.cause as NodeJS.ErrnoException)?.code === 'ENOSPC';
          state.log.error({ err }, 'message not queued');
          // RFC 5321 §4.2.5 / DESIGN.md §6: a full disk is 452, never 250-then-lose.
          callback(disk ? new SmtpError(452, '4.3.1', 'Insufficient system storage') : new SmtpError(451, '4.3.0', 'Temporary failure storing the message, try again later'));
        });
    });

    async function accept(raw: Buffer): Promise<string> {
      if (stream.sizeExceeded) {
        throw new SmtpError(552, '5.3.4', 'Message size exceeds fixed maximum message size');
      }
      const { data, smuggling, bare } = normalizeLineEndings(raw);
      if (smuggling) {
        throw new SmtpError(554, '5.5.2', 'Message refused: bare <LF> or <CR> around a line with a single dot (SMTP smuggling)');
      }
      if (countReceived(data) >= opts.hopLimit) {
        throw new SmtpError(554, '5.4.6', 'Too many hops: mail forwarding loop');
      }
      const from = session.envelope.mailFrom ? session.envelope.mailFrom.address : '';
      const recipients = session.envelope.rcptTo.map((r) => r.address.toLowerCase());
      let message = data;
      const ours = state.user !== undefined || mayRelayByAddress(deps.settings, session.remoteAddress);
      if (ours && opts.outgoing) message = await opts.outgoing(message, from);
      const id = deps.newQueueId();
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
      const full = Buffer.concat([Buffer.from(received, 'latin1'), message]);
      try {
        await deps.enqueue(full, {
          id,
          from,
          recipients: recipients.map((address) => ({ address, origin: 'rcpt', state: 'pending', attempts: 0 })),
          receivedAt: new Date().toISOString(),
          client: {
            address: session.remoteAddress,
            helo: session.hostNameAppearsAs || undefined,
            user: state.user?.login,
            listener: state.role,
          },
          ...(fromLocalNetwork(deps.settings, session.remoteAddress, state.user !== undefined) ? {} : {}),
        });
      } catch (err) {
        if (err instanceof TempFailure) throw Object.assign(new Error(err.message), { cause: err.cause });
        throw err;
      }
      state.log.info(
        { event: 'queued', queueId: id, from, to: recipients, size: full.length, bareLineEndings: bare || undefined },
        `queued as ${id}`,
      );
      return id;
    }
  };
}
