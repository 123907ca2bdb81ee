/**
 * SASL GSSAPI, the server side (RFC 4752), with the Kerberos V5 mechanism through the `kerberos` package: Kerberos
 * single sign-on for IMAP, POP3, SMTP submission and ManageSieve. The protocols carry the exchange (SaslConversation); this file
 * runs it and says who the client is (a principal, user@REALM); the Authenticator maps that to the AD user.
 *
 * The acceptor's keys come from a keytab (`auth.kerberos.keytab`): MIT krb5 reads KRB5_KTNAME, set here before the
 * first use. The service principals are `imap/<host>`, `pop/<host>`, `smtp/<host>` and `sieve/<host>` (RFC 5804 §2.1
 * names "sieve" for ManageSieve; RFC 4752 §3.1 uses the
 * GSS host-based service name "<service>@<host>"; the names are the IANA GSSAPI/Kerberos service names).
 *
 * The security layer exchange of RFC 4752 §3.1 needs the acceptor's gss_wrap / gss_unwrap, which the package only
 * had on its client side: patches/kerberos+7.0.0.patch adds them (KerberosServer.wrap / unwrap) and the postinstall
 * rebuilds the addon from source after patch-package. We decided for the patch over the alternatives because the
 * wrap token needs the context's session key, which never leaves libgssapi (so it cannot be built in JavaScript),
 * and skipping the step is not an option: clients (curl, Thunderbird, Cyrus SASL's gssapiv2 plugin) unwrap the
 * server's security-layer offer and fail without it.
 */
import { accessSync, constants } from 'node:fs';
import { resolve } from 'node:path';
import kerberos, { type KerberosServer } from 'kerberos';
import type { Logger } from '../lib/logger.js';

/** The GSSAPI service names of the protocols (IANA "GSSAPI/Kerberos/SASL Service Names"). */
export type GssapiService = 'imap' | 'pop' | 'smtp' | 'sieve';

/** The client cancelled the exchange ("*", RFC 4954 §4, RFC 3501 §6.2.2, RFC 5034 §4). */
export class SaslCancelled extends Error {
  constructor() {
    super('authentication cancelled');
    this.name = 'SaslCancelled';
  }
}

/** How a protocol carries one SASL exchange: a server challenge out, the client's response back (both decoded). */
export interface SaslConversation {
  /** Sends `data` as a challenge; resolves with the client's response; rejects with SaslCancelled on "*". */
  challenge(data: Buffer): Promise<Buffer>;
}

export type GssapiOutcome =
  /** The context is established and the security layer agreed: `principal` is the client (user@REALM). */
  | { status: 'ok'; principal: string; authzid: string }
  /** A token that does not verify, a wrong exchange: answered as a wrong password. */
  | { status: 'invalid'; reason: string }
  /** The acceptor cannot work now (no key for the service principal, keytab unreadable): a temporary failure. */
  | { status: 'tempfail'; reason: string };

/** RFC 4752 §3.3: the security layer bit masks; we offer only "no security layer" (TLS protects the session). */
const LAYER_NONE = 0x01;

export interface GssapiAcceptorOptions {
  keytab: string;
  /** The host part of the service principals (`auth.kerberos.hostname`, default the server's `hostname`). */
  hostname: string;
  log: Logger;
}

export class GssapiAcceptor {
  readonly keytab: string;
  readonly hostname: string;
  private readonly log: Logger;

  constructor(opts: GssapiAcceptorOptions) {
    this.keytab = resolve(opts.keytab);
    this.hostname = opts.hostname.toLowerCase();
    this.log = opts.log.child({ component: 'auth' });
    // One keytab for the process: the acceptor credentials of libgssapi are looked up in KRB5_KTNAME (MIT krb5
    // reads it when a krb5 context is made, i.e. at every gss_acquire_cred), so it must be set before the first one.
    process.env.KRB5_KTNAME = `FILE:${this.keytab}`;
    // Not a start-up error: the keytab may be deployed after the server (GSSAPI is announced once it is readable).
    if (!this.available()) this.log.warn({ keytab: this.keytab }, 'auth.kerberos.keytab is not readable: GSSAPI is not offered until it is');
  }

  /**
   * Whether GSSAPI may be offered: the keytab is there and readable. Asked when a capability list is made, so a
   * keytab that appears or is fixed later is picked up without a restart, and one that vanished is not announced.
   */
  available(): boolean {
    try {
      accessSync(this.keytab, constants.R_OK);
      return true;
    } catch {
      return false;
    }
  }

  /** The GSS host-based service name of a protocol, e.g. imap@mail.corp.example (principal imap/mail.corp.example). */
  serviceName(service: GssapiService): string {
    return `${service}@${this.hostname}`;
  }

  /**
   * One RFC 4752 §3.1 exchange. `initial` is the initial response (SASL-IR, RFC 4959; the AUTH argument in SMTP and
   * POP3) when the client sent one; an empty initial response is the same as none.
   */
  async accept(service: GssapiService, initial: Buffer | undefined, conv: SaslConversation): Promise<GssapiOutcome> {
    let server: KerberosServer;
    try {
      server = await kerberos.initializeServer(this.serviceName(service));
    } catch (err) {
      const reason = `no acceptor credentials for ${this.serviceName(service)} in ${this.keytab}: ${message(err)}`;
      this.log.error({ service, keytab: this.keytab, err: message(err) }, 'GSSAPI: cannot acquire acceptor credentials');
      return { status: 'tempfail', reason };
    }
    // §3.1: "The client calls GSS_Init_sec_context ... and sends the output token as the initial response", or in
    // the response to an empty challenge when the protocol has no initial response.
    const token = initial && initial.length ? initial : await conv.challenge(Buffer.alloc(0));
    if (!token.length) return { status: 'invalid', reason: 'empty GSSAPI token' };
    let reply: string | null;
    try {
      reply = await server.step(token.toString('base64'));
    } catch (err) {
      return { status: 'invalid', reason: `GSS_Accept_sec_context: ${message(err)}` };
    }
    if (!server.contextComplete || !server.username) return { status: 'invalid', reason: 'security context not established' };
    // With mutual authentication the acceptor has an AP-REP for the client; the client then answers with an empty
    // response (its GSS_Init_sec_context returned GSS_S_COMPLETE with no output token). Kerberos V5 needs no more
    // context tokens, so anything else is a broken exchange.
    if (reply) {
      const empty = await conv.challenge(Buffer.from(reply, 'base64'));
      if (empty.length) return { status: 'invalid', reason: 'unexpected token after the context was established' };
    }
    // §3.1: the server wraps (conf_flag FALSE) 4 octets: the security layers it supports, then the maximum message
    // size it can receive, which is 0 when it supports no security layer.
    let offer: string;
    try {
      offer = await server.wrap(Buffer.from([LAYER_NONE, 0, 0, 0]).toString('base64'), false);
    } catch (err) {
      return { status: 'invalid', reason: `GSS_Wrap: ${message(err)}` };
    }
    const answer = await conv.challenge(Buffer.from(offer, 'base64'));
    let chosen: Buffer;
    try {
      chosen = Buffer.from(await server.unwrap(answer.toString('base64')), 'base64');
    } catch (err) {
      return { status: 'invalid', reason: `GSS_Unwrap of the security layer answer: ${message(err)}` };
    }
    // §3.1: the client's answer is the one layer it chose, its maximum size, then the authorization identity.
    if (chosen.length < 4 || chosen[0] !== LAYER_NONE) return { status: 'invalid', reason: 'client chose a security layer we did not offer' };
    const authzid = chosen.subarray(4).toString('utf8');
    if (authzid.includes('\0')) return { status: 'invalid', reason: 'NUL in the authorization identity' };
    return { status: 'ok', principal: server.username, authzid };
  }
}

function message(err: unknown): string {
  return (err as Error)?.message ?? String(err);
}
