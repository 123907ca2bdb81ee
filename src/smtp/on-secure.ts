import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { SMTPServerSession } from 'smtp-server';
import type { Settings } from '../settings/store.js';
import type { ListenerRole, Sessions, SmtpDeps } from './session.js';

/**
 * Whether AUTH is offered: only inside TLS (RFC 4954 §4, RFC 3207 §4: no plaintext passwords, and a mechanism list
 * an attacker could strip must not be sent in clear), and on port 25 only with the seed's "allow authentication on
 * port 25" (RFC 6409 §4: submission is 587/465).
 */
export function authOffered(role: ListenerRole, secure: boolean, settings: Pick<Settings, 'get'>): boolean {
  return secure && (role !== 'smtp' || settings.get('smtp.authOnPort25'));
}

/** The commands a session does not have: smtp-server takes a per-session list that replaces its own. */
export function disabledCommands(role: ListenerRole, secure: boolean, settings: Pick<Settings, 'get'>): string[] {
  return authOffered(role, secure, settings) ? [] : ['AUTH'];
}

/**
 * The reply to AUTH where it is not offered (smtp-server's disabledCommandReply, patches/smtp-server+*.patch).
 * Before STARTTLS on a listener that offers AUTH inside TLS: RFC 3207 §4's 530 5.7.0. Where AUTH is not offered
 * even with TLS (port 25 without smtp.authOnPort25): Postfix's 503 5.5.1. Anything else stays "500 5.5.2".
 */
export function disabledCommandReply(role: ListenerRole, settings: Pick<Settings, 'get'>) {
  return (command: string, session: SMTPServerSession): { code: number; message: string } | undefined => {
    if (command !== 'AUTH') return undefined;
    if (!session.secure && authOffered(role, true, settings)) return { code: 530, message: '5.7.0 Must issue a STARTTLS command first' };
    return { code: 503, message: '5.5.1 Error: authentication not enabled' };
  };
}

/**
 * TLS is up (STARTTLS done, or the handshake of port 465). RFC 3207 §4.2: everything learnt before the handshake
 * is forgotten — smtp-server drops HELO, the transaction and its own user; we drop ours too (DESIGN.md §6
 * "STARTTLS resets the world"), then offer AUTH where the listener allows it.
 */
export function makeOnSecure(deps: SmtpDeps, role: ListenerRole, sessions: Sessions) {
  return (_socket: Socket | TLSSocket, session: SMTPServerSession, callback: (err?: Error | null) => void): void => {
    const state = sessions.find(session);
    if (state) {
      state.user = undefined;
      if (role !== 'smtps') state.log.info({ event: 'starttls', tls: session.tlsOptions ? session.tlsOptions.version : undefined }, 'STARTTLS');
    }
    session.disabledCommands = disabledCommands(role, true, deps.settings);
    callback();
  };
}
