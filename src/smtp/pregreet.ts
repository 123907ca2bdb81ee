/**
 * The pregreet test, as Postfix's postscreen does it (postscreen_greet_wait, postscreen_greet_ttl): before the 220
 * greeting the server waits a little, and a client that sends a command in that time is refused (RFC 5321 §4.3.1:
 * the client waits for the greeting; spam bots that talk first are the classic early talker). A client that waited
 * is remembered for a while and greeted at once on its next connections, so a legitimate MTA pays the wait once a
 * day, not once a message.
 *
 * smtp-server (patches/smtp-server+*.patch) asks `greetingDelay(client)` for each connection and answers an early
 * talker with `earlyTalkerResponse`; this file decides the delay. Off (0) on submission and for smtp.relayFrom and
 * smtp.trustedNetworks clients (our own printers and servers are not tested, as postscreen skips its allow lists).
 */
import { inNetworks } from '../lib/networks.js';
import type { Settings } from '../settings/store.js';

export interface PregreetConfig {
  waitMs: number;
  ttlHours: number;
}

/** The reply to a client that talked before the greeting (postscreen: "Protocol error"). */
export const EARLY_TALKER_REPLY = { code: 554, message: '5.5.1 Protocol error: talking before the greeting' };

/** Clients that passed, remembered at most this many (the oldest are forgotten first). */
const MAX_REMEMBERED = 100_000;

export class Pregreet {
  /** address → epoch ms until which it is greeted at once; insertion order = age (Map keeps it). */
  private readonly passed = new Map<string, number>();
  /** Connections being tested (smtp-server connection id → client address). */
  private readonly testing = new Map<string, string>();

  constructor(
    private readonly settings: Pick<Settings, 'get'>,
    private readonly now: () => number = Date.now,
  ) {}

  /** How long to wait before greeting this client, in ms (smtp-server's greetingDelay). */
  delay(config: PregreetConfig, client: { id: string; remoteAddress: string }): number {
    if (config.waitMs <= 0) return 0;
    const ip = client.remoteAddress;
    if (inNetworks(this.settings.get('smtp.relayFrom'), ip) || inNetworks(this.settings.get('smtp.trustedNetworks'), ip)) return 0;
    const until = this.passed.get(ip);
    if (until !== undefined) {
      if (until > this.now()) return 0;
      this.passed.delete(ip);
    }
    this.testing.set(client.id, ip);
    return config.waitMs;
  }

  /**
   * The connection reached the greeting (onConnect): if it was being tested it waited, so it passed. Returns
   * whether it was tested.
   */
  greeted(config: PregreetConfig, id: string): boolean {
    const ip = this.testing.get(id);
    if (ip === undefined) return false;
    this.testing.delete(id);
    if (config.ttlHours > 0) {
      this.passed.delete(ip);
      this.passed.set(ip, this.now() + config.ttlHours * 3_600_000);
      if (this.passed.size > MAX_REMEMBERED) this.passed.delete(this.passed.keys().next().value!);
    }
    return true;
  }

  /** The connection ended (refused early or closed): forget the test. */
  forget(id: string): void {
    this.testing.delete(id);
  }
}
