/**
 * DNSBL stage (connect phase): the connecting server's address is looked up in each zone of `filter.dnsbl.zones`
 * (RFC 5782). A listing refuses the session with 554 5.7.1, as Postfix's reject_rbl_client does.
 *
 * Which answers count (RFC 5782 §2.3 leaves the values to each list):
 * - an A record in 127.0.0.2–127.0.0.255 is a listing;
 * - 127.255.255.x are the Spamhaus error codes (252 typo in the zone name, 254 query through a public resolver,
 *   255 excessive queries): the list refuses to answer, which is not a listing. They are logged (at most once
 *   per zone every ten minutes) and the zone counts as answered, so a misconfigured zone cannot stop all mail;
 * - 127.0.0.1 is used by some lists (SURBL) as "blocked" rather than "listed", any other 127/8 value is a code of
 *   a domain list, and an answer outside 127/8 comes from a resolver that rewrites NXDOMAIN: all ignored;
 * - NXDOMAIN (and NODATA) is "not listed".
 *
 * A zone that times out or fails (SERVFAIL, REFUSED) is left out; when every zone fails the stage throws, and the
 * pipeline applies `filter.dnsbl.onFailure` (451 4.7.1 by default — "temporary beats wrong", DESIGN.md §6).
 *
 * Who is not checked: clients of the submission listeners (587/465 users sit on dynamic addresses that lists such
 * as the Spamhaus PBL carry on purpose; they authenticate instead), clients in `smtp.relayFrom` or
 * `smtp.trustedNetworks`, and loopback / private / link-local / CGNAT / ULA addresses, which no public list
 * carries and whose lookups only leak the LAN layout. Tests connect from 127.0.0.1: `checkPrivate: true` checks
 * those addresses too.
 */
import { inNetworks } from '../lib/networks.js';
import { Resolver } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';
import type { Logger } from '../lib/logger.js';
import { TempFailure } from '../lib/errors.js';
import type { Settings } from '../settings/store.js';
import { ACCEPT, type FilterContext, type FilterStage, type FilterVerdict } from './types.js';

export interface DnsblDnsOptions {
  /** Resolvers as `ip` or `ip:port`; default the system ones (config `dns.servers`). */
  servers?: string[];
  /** The whole budget of one zone's lookup (config `dns.timeoutMs`); default 5000. */
  timeoutMs?: number;
}

export interface DnsblStageOptions {
  settings: Pick<Settings, 'get'>;
  dns: DnsblDnsOptions;
  /** A logger with component `filter`; the stage adds `stage: 'dnsbl'`. */
  log: Logger;
  /** Also check loopback and private addresses (tests connect from 127.0.0.1). Default false. */
  checkPrivate?: boolean;
  /** How long a listing waits for the zone's TXT reason before replying without it; default min(1000, timeoutMs/2). */
  reasonTimeoutMs?: number;
}

/** What one zone said about the client. */
export type ZoneAnswer =
  | { zone: string; status: 'listed'; answer: string; reason?: string }
  | { zone: string; status: 'clean' }
  | { zone: string; status: 'refused'; answer: string }
  | { zone: string; status: 'failed'; error: string };

const ERROR_CODE_WARN_INTERVAL_MS = 10 * 60 * 1000;

/** Addresses no public list carries: RFC 1918, loopback, link-local, CGNAT (RFC 6598), ULA, unspecified. */
const PRIVATE = (() => {
  const l = new BlockList();
  for (const [net, prefix] of [
    ['0.0.0.0', 8],
    ['10.0.0.0', 8],
    ['100.64.0.0', 10],
    ['127.0.0.0', 8],
    ['169.254.0.0', 16],
    ['172.16.0.0', 12],
    ['192.168.0.0', 16],
  ] as const) {
    l.addSubnet(net, prefix, 'ipv4');
  }
  l.addAddress('::', 'ipv6');
  l.addAddress('::1', 'ipv6');
  l.addSubnet('fc00::', 7, 'ipv6');
  l.addSubnet('fe80::', 10, 'ipv6');
  return l;
})();

/** `::ffff:192.0.2.1` → `192.0.2.1`; other addresses lower-case; not an address → null. */
export function normalizeClientIp(ip: string): string | null {
  const s = ip.trim().toLowerCase().replace(/^\[|\]$/g, '').replace(/%.*$/, '');
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (mapped && isIP(mapped[1]) === 4) return mapped[1];
  return isIP(s) ? s : null;
}

export function isPrivateAddress(ip: string): boolean {
  const a = normalizeClientIp(ip);
  if (!a) return false;
  return PRIVATE.check(a, isIP(a) === 4 ? 'ipv4' : 'ipv6');
}

/** The 32 hex nibbles of an IPv6 address, most significant first. */
function ipv6Nibbles(ip: string): string[] {
  let s = ip.toLowerCase();
  // A trailing dotted quad (::ffff:1.2.3.4, 64:ff9b::1.2.3.4) is two groups.
  const quad = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(s);
  if (quad) {
    const b = quad.slice(1).map(Number);
    s = s.slice(0, quad.index) + ((b[0] << 8) | b[1]).toString(16) + ':' + ((b[2] << 8) | b[3]).toString(16);
  }
  const [head, tail] = s.includes('::') ? s.split('::') : [s, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  return groups.flatMap((g) => g.padStart(4, '0').split(''));
}

/**
 * The name to look up for `ip` in `zone` (RFC 5782 §2.1 and §2.4): the IPv4 octets reversed, or the 32 nibbles
 * of an IPv6 address reversed, then the zone. Throws for something that is not an IP address.
 */
export function dnsblQueryName(ip: string, zone: string): string {
  const a = normalizeClientIp(ip);
  if (!a) throw new Error(`not an IP address: ${ip}`);
  const z = zone.toLowerCase().replace(/\.$/, '');
  if (isIP(a) === 4) return `${a.split('.').reverse().join('.')}.${z}`;
  return `${ipv6Nibbles(a).reverse().join('.')}.${z}`;
}

/**
 * What the A records of a DNSBL answer mean: `listed` (a 127.0.0.2–255 value, the first one returned),
 * `refused` (only Spamhaus-style 127.255.255.x error codes besides ignored values), or `clean`.
 */
export function classifyDnsblAnswer(addresses: string[]): { status: 'listed' | 'refused' | 'clean'; answer?: string } {
  const listed = addresses.find((a) => /^127\.0\.0\.(\d+)$/.test(a) && Number(a.split('.')[3]) >= 2 && Number(a.split('.')[3]) <= 255);
  if (listed) return { status: 'listed', answer: listed };
  const code = addresses.find((a) => a.startsWith('127.255.255.'));
  if (code) return { status: 'refused', answer: code };
  return { status: 'clean' };
}

function dnsCode(err: unknown): string {
  return typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : 'EUNKNOWN';
}

/** Resolves with `p` or rejects with an ETIMEOUT error after `ms` (the lookup itself is left to finish). */
function deadline<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(Object.assign(new Error(`no answer within ${ms} ms`), { code: 'ETIMEOUT' })), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** A TXT reason is put into an SMTP reply: printable ASCII only, one line, not too long. */
function cleanReason(txt: string[][]): string | undefined {
  const s = txt
    .map((parts) => parts.join(''))
    .join(' ')
    .replace(/[^\x20-\x7e]+/g, ' ')
    .replace(/\s+/g, ' ')
    .trim();
  if (!s) return undefined;
  return s.length > 200 ? `${s.slice(0, 197)}...` : s;
}


export function dnsblStage(opts: DnsblStageOptions): FilterStage {
  const timeoutMs = opts.dns.timeoutMs ?? 5000;
  const reasonTimeoutMs = opts.reasonTimeoutMs ?? Math.min(1000, Math.max(100, Math.floor(timeoutMs / 2)));
  // c-ares doubles the timeout on its retry: t + 2t fits the budget, and one lost UDP packet is retried.
  const resolver = new Resolver({ timeout: Math.max(50, Math.floor(timeoutMs / 3)), tries: 2 });
  if (opts.dns.servers?.length) resolver.setServers(opts.dns.servers);
  const log = opts.log.child({ stage: 'dnsbl' });
  const lastWarned = new Map<string, number>();

  const isTrusted = (ip: string): boolean => {
    return inNetworks([...opts.settings.get('smtp.relayFrom'), ...opts.settings.get('smtp.trustedNetworks')], ip);
  };

  async function queryZone(ip: string, zone: string): Promise<ZoneAnswer> {
    const name = dnsblQueryName(ip, zone);
    let addresses: string[];
    try {
      addresses = await deadline(resolver.resolve4(name), timeoutMs);
    } catch (err) {
      const code = dnsCode(err);
      // NXDOMAIN is the normal "not listed"; NODATA (the name exists, no A) is not a listing either.
      if (code === 'ENOTFOUND' || code === 'ENODATA') return { zone, status: 'clean' };
      return { zone, status: 'failed', error: code };
    }
    const c = classifyDnsblAnswer(addresses);
    if (c.status === 'clean') return { zone, status: 'clean' };
    if (c.status === 'refused') return { zone, status: 'refused', answer: c.answer! };
    let reason: string | undefined;
    try {
      reason = cleanReason(await deadline(resolver.resolveTxt(name), reasonTimeoutMs));
    } catch {
      /* the reason is a courtesy: the listing stands without it */
    }
    return { zone, status: 'listed', answer: c.answer!, ...(reason ? { reason } : {}) };
  }

  return {
    name: 'dnsbl',
    phase: 'connect',
    async check(ctx: FilterContext): Promise<FilterVerdict> {
      const zones = opts.settings.get('filter.dnsbl.zones');
      if (zones.length === 0) return ACCEPT;
      if (ctx.client.listener !== 'smtp' || ctx.client.user) return ACCEPT;
      const ip = normalizeClientIp(ctx.client.address);
      if (!ip) return ACCEPT;
      if (isTrusted(ip)) return ACCEPT;
      if (!opts.checkPrivate && isPrivateAddress(ip)) return ACCEPT;

      const answers = await Promise.all(zones.map((zone) => queryZone(ip, zone)));
      const failed = answers.filter((a) => a.status === 'failed');
      for (const a of answers) {
        if (a.status === 'failed') {
          log.warn({ id: ctx.id, client: ip, zone: a.zone, error: a.error }, 'DNSBL lookup failed');
        } else if (a.status === 'refused') {
          const now = Date.now();
          if (now - (lastWarned.get(a.zone) ?? 0) >= ERROR_CODE_WARN_INTERVAL_MS) {
            lastWarned.set(a.zone, now);
            log.warn(
              { id: ctx.id, zone: a.zone, answer: a.answer },
              'DNSBL zone answers with an error code (127.255.255.x): the list refuses our queries (public resolver, quota or typo); it is ignored',
            );
          }
        }
      }
      const listed = answers.find((a): a is Extract<ZoneAnswer, { status: 'listed' }> => a.status === 'listed');
      if (listed) {
        // One listing is enough even when other zones failed: what answered is authoritative for itself.
        return {
          action: 'reject',
          reply: {
            code: 554,
            enhanced: '5.7.1',
            text: `Service unavailable; client [${ip}] blocked using ${listed.zone}${listed.reason ? `; ${listed.reason}` : ''}`,
          },
          tags: { dnsbl: { zone: listed.zone, answer: listed.answer, ...(listed.reason ? { reason: listed.reason } : {}) } },
        };
      }
      if (failed.length === answers.length) {
        throw new TempFailure(
          `DNSBL lookups failed for every zone (${failed.map((a) => `${a.zone}: ${(a as { error: string }).error}`).join(', ')})`,
        );
      }
      return failed.length ? { action: 'accept', tags: { dnsblFailed: failed.map((a) => a.zone) } } : ACCEPT;
    },
  };
}
