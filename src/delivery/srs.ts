/**
 * Sender Rewriting Scheme (issue 12 §4; what Postfix admins run postsrsd for). A message we forward to another
 * domain leaves with an envelope sender in our SRS domain, so the receiver's SPF check asks about us, not about the
 * original sender's domain (which never authorised our address):
 *
 *   alice@orig.example  →  SRS0=HHHHHHHH=TT=orig.example=alice@<srs.domain>
 *
 * HHHHHHHH is a keyed hash (HMAC-SHA256 with our secret, base32, 40 bits) over the timestamp, domain and local part;
 * TT is the day (days since 1970 mod 1024, base32, two characters, as in libsrs2). A bounce to such an address is
 * reversed to the original sender when the hash matches and the day is at most `maxAgeDays` old; anything else with
 * the SRS0 form at our SRS domain is forged or stale and refused — so the SRS domain is no open relay.
 *
 * Base32 and a lower-cased input make the whole address case-insensitive: MTAs on the way (and we ourselves) may
 * fold the case of a local part. An address that already is ours (SRS0 at our SRS domain) is not wrapped again.
 * The secret file holds one secret per line: the first signs, every one verifies (rotation without broken bounces).
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
const DAY_MS = 86_400_000;
/** libsrs2: the timestamp has 10 bits, so it wraps every 1024 days. */
const TIME_SLOTS = 1024;
const HASH_CHARS = 8;
/** SRS0, a separator (libsrs2 accepts =, + and -), hash, timestamp, domain, local part. */
const SRS0 = /^srs0[=+-]([a-z2-7]+)=([a-z2-7]{2})=([^=@]+)=(.+)@([^@]+)$/i;

export interface SrsOptions {
  /** Secrets, the first one signs. */
  secrets: string[];
  /** The domain of rewritten senders: one that reaches us (MX/A), by default our hostname. */
  domain: string;
  /** How long a rewritten address is honoured for bounces (libsrs2's maxage, 21 days). */
  maxAgeDays: number;
  /** For tests: the clock. */
  now?: () => number;
}

export type SrsReverse =
  /** Not an SRS0 address at our SRS domain: handle it as any other address. */
  | { kind: 'not-srs' }
  | { kind: 'valid'; address: string }
  /** The hash does not match (forged, or signed with a secret we no longer have), or the address is too old. */
  | { kind: 'invalid'; reason: 'hash' | 'expired' };

function base32(bytes: Buffer, chars: number): string {
  let out = '';
  let bits = 0;
  let value = 0;
  for (const b of bytes) {
    value = (value << 8) | b;
    bits += 8;
    while (bits >= 5 && out.length < chars) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
    if (out.length >= chars) break;
  }
  return out;
}

export class Srs {
  private readonly domain: string;
  private readonly now: () => number;
  constructor(private readonly opts: SrsOptions) {
    if (!opts.secrets.length) throw new Error('SRS needs at least one secret');
    this.domain = opts.domain.toLowerCase();
    this.now = opts.now ?? Date.now;
  }

  /** The secrets of a file (one per line, blank lines and #comments ignored); a new random one when it is absent. */
  static secretsFromFile(file: string): string[] {
    if (!existsSync(file)) {
      mkdirSync(dirname(file), { recursive: true });
      writeFileSync(file, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600, flag: 'wx' });
    }
    chmodSync(file, 0o600);
    const secrets = readFileSync(file, 'utf8')
      .split(/\r?\n/)
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#'));
    if (!secrets.length) throw new Error(`${file}: no SRS secret in it`);
    return secrets;
  }

  private hash(secret: string, timestamp: string, domain: string, local: string): string {
    const mac = createHmac('sha256', secret).update(`${timestamp}\0${domain}\0${local}`.toLowerCase()).digest();
    return base32(mac, HASH_CHARS);
  }

  private today(): number {
    return Math.floor(this.now() / DAY_MS) % TIME_SLOTS;
  }

  /** Whether `address` is an SRS0 address of ours (already rewritten: never wrapped twice). */
  isOurs(address: string): boolean {
    const m = SRS0.exec(address);
    return !!m && m[5].toLowerCase() === this.domain;
  }

  /** The rewritten envelope sender for `sender` (local@domain); the null sender and our own SRS addresses stay. */
  forward(sender: string): string {
    if (!sender || this.isOurs(sender)) return sender;
    const at = sender.lastIndexOf('@');
    if (at <= 0) return sender;
    const local = sender.slice(0, at);
    const domain = sender.slice(at + 1).toLowerCase();
    const t = this.today();
    const timestamp = BASE32[(t >> 5) & 31] + BASE32[t & 31];
    return `SRS0=${this.hash(this.opts.secrets[0], timestamp, domain, local)}=${timestamp}=${domain}=${local}@${this.domain}`;
  }

  reverse(address: string): SrsReverse {
    const m = SRS0.exec(address);
    if (!m || m[5].toLowerCase() !== this.domain) return { kind: 'not-srs' };
    const [, hash, timestamp, domain, local] = m;
    const given = Buffer.from(hash.toUpperCase());
    const ok = this.opts.secrets.some((s) => {
      const expected = Buffer.from(this.hash(s, timestamp, domain, local));
      return expected.length === given.length && timingSafeEqual(expected, given);
    });
    if (!ok) return { kind: 'invalid', reason: 'hash' };
    const t = BASE32.indexOf(timestamp[0].toUpperCase()) * 32 + BASE32.indexOf(timestamp[1].toUpperCase());
    const age = (this.today() - t + TIME_SLOTS) % TIME_SLOTS;
    if (age > this.opts.maxAgeDays) return { kind: 'invalid', reason: 'expired' };
    return { kind: 'valid', address: `${local}@${domain.toLowerCase()}` };
  }
}
