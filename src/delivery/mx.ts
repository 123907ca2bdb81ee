/**
 * Where mail for a domain goes: MX lookup (RFC 5321 §5.1) with the resolvers of `config.dns`.
 *
 * The answer is an ordered list of hosts, each with its addresses, or an MxError that says whether the failure is
 * permanent (the message bounces) or temporary (it is retried). Only a definite answer from DNS is permanent:
 * NXDOMAIN for the domain, or a null MX (RFC 7505). Everything else that goes wrong — SERVFAIL, a timeout, a refused
 * query, an MX host without addresses — is temporary (DESIGN.md §6 "Temporary beats wrong").
 */
import { Resolver } from 'node:dns/promises';
import { isIP } from 'node:net';
import { domainToASCII } from 'node:url';

export interface MxHost {
  /** Host name (lower-case, no trailing dot), or the address itself for an address literal. */
  host: string;
  /** MX preference; 0 for an implicit MX and for literal hosts. */
  preference: number;
  /** A addresses first, then AAAA (RFC 5321 §5.1 leaves the order to the client; IPv4 is the safer bet). */
  addresses: string[];
  /** No MX record: the domain itself is the host (RFC 5321 §5.1 "implicit MX"). */
  implicit?: boolean;
  /** Why the host has no address (temporary: the host is skipped in this attempt). */
  error?: string;
}

export class MxError extends Error {
  constructor(
    message: string,
    /** true: retry later; false: the domain cannot receive mail (bounce). */
    readonly temporary: boolean,
    /** RFC 3463 status, e.g. 5.1.2 for NXDOMAIN, 5.1.10 for a null MX, 4.4.3 for a DNS failure. */
    readonly status: string,
  ) {
    super(message);
    this.name = 'MxError';
  }
  /** The SMTP-style code that goes with the status (for DeliveryResult.code). */
  get code(): number {
    return this.temporary ? 451 : 550;
  }
}

export interface MxResolverOptions {
  /** Resolvers as `ip` or `ip:port` (`[v6]:port`); default the system ones. */
  servers?: string[];
  timeoutMs?: number;
  /** Tries per query and server (c-ares `tries`); default 2. */
  tries?: number;
}

export interface HostsForOptions {
  /**
   * Our own names (hostname, HELO name). RFC 5321 §5.1: when we are one of the MX hosts, only hosts with a lower
   * preference than ours are tried; if none is left the mail would loop back to us, which is permanent.
   */
  self?: string[];
}

const DEFINITE_NONE = new Set(['ENOTFOUND', 'ENODATA']);

function dnsCode(err: unknown): string {
  return typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : 'EUNKNOWN';
}

/** Lower-case, no trailing dot, and an internationalised name in its A-label form (DNS knows no Unicode). */
function cleanName(name: string): string {
  const s = name.trim().toLowerCase().replace(/\.$/, '');
  if (!/[^\x00-\x7f]/.test(s)) return s;
  return domainToASCII(s) || s;
}

/** Fisher–Yates: RFC 5321 §5.1 asks for hosts of equal preference to be tried in random order (load spreading). */
function shuffle<T>(items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [items[i], items[j]] = [items[j], items[i]];
  }
  return items;
}

export class MxResolver {
  private readonly resolver: Resolver;

  constructor(opts: MxResolverOptions = {}) {
    this.resolver = new Resolver({ timeout: opts.timeoutMs ?? 5000, tries: opts.tries ?? 2 });
    if (opts.servers?.length) this.resolver.setServers(opts.servers);
  }

  /**
   * The hosts to try for `domain`, best first. Throws MxError. A domain written as an address literal
   * (`[192.0.2.1]`, `[IPv6:2001:db8::1]`, RFC 5321 §4.1.3) is that address, with no lookup.
   */
  async hostsFor(domain: string, opts: HostsForOptions = {}): Promise<MxHost[]> {
    const literal = addressLiteral(domain);
    if (literal) return [{ host: literal, preference: 0, addresses: [literal] }];
    const name = cleanName(domain);
    if (!name) throw new MxError('empty domain', false, '5.1.2');

    let records: { exchange: string; priority: number }[];
    try {
      records = await this.resolver.resolveMx(name);
    } catch (err) {
      const code = dnsCode(err);
      if (code === 'ENOTFOUND') throw new MxError(`domain ${name} does not exist (NXDOMAIN)`, false, '5.1.2');
      if (code !== 'ENODATA') throw new MxError(`MX lookup for ${name} failed: ${code}`, true, '4.4.3');
      records = [];
    }

    if (records.length === 0) {
      // RFC 5321 §5.1: no MX records → the domain itself, when it has an address.
      const host = await this.resolveHost(name);
      if (host.addresses.length === 0) {
        if (host.definite) throw new MxError(`domain ${name} has no MX and no address records`, false, '5.1.2');
        throw new MxError(`address lookup for ${name} failed: ${host.error}`, true, '4.4.3');
      }
      return [{ host: name, preference: 0, addresses: host.addresses, implicit: true }];
    }

    // RFC 7505 §3: a single MX with the root as exchange means the domain accepts no mail.
    const isNull = (r: { exchange: string }) => cleanName(r.exchange) === '';
    if (records.some(isNull)) {
      if (records.length === 1) throw new MxError(`domain ${name} accepts no mail (null MX, RFC 7505)`, false, '5.1.10');
      records = records.filter((r) => !isNull(r)); // a null MX among others is a misconfiguration: ignore it
    }

    const byPref = new Map<number, string[]>();
    for (const r of records) {
      const list = byPref.get(r.priority) ?? [];
      const host = cleanName(r.exchange);
      if (!list.includes(host)) list.push(host);
      byPref.set(r.priority, list);
    }
    let ordered: { host: string; preference: number }[] = [];
    for (const pref of [...byPref.keys()].sort((a, b) => a - b)) {
      for (const host of shuffle(byPref.get(pref)!)) ordered.push({ host, preference: pref });
    }

    const self = new Set((opts.self ?? []).map(cleanName).filter(Boolean));
    const mine = ordered.find((h) => self.has(h.host));
    if (mine) {
      ordered = ordered.filter((h) => h.preference < mine.preference);
      if (ordered.length === 0) throw new MxError(`mail for ${name} loops back to myself`, false, '5.4.6');
    }

    const resolved = await Promise.all(ordered.map(async (h) => ({ h, r: await this.resolveHost(h.host) })));
    const hosts = resolved.map(({ h, r }): MxHost => ({
      host: h.host,
      preference: h.preference,
      addresses: r.addresses,
      ...(r.addresses.length === 0 ? { error: r.error } : {}),
    }));
    if (!hosts.some((h) => h.addresses.length > 0)) {
      // A broken MX target may be fixed within the queue lifetime; say what is wrong and retry.
      throw new MxError(`no MX host of ${name} has an address (${hosts.map((h) => `${h.host}: ${h.error}`).join('; ')})`, true, '4.4.3');
    }
    return hosts;
  }

  /** A then AAAA addresses of `host` (an IP address is returned as is). Throws MxError when none can be had. */
  async addressesOf(host: string): Promise<string[]> {
    const literal = addressLiteral(host);
    if (literal) return [literal];
    const name = cleanName(host);
    const r = await this.resolveHost(name);
    if (r.addresses.length) return r.addresses;
    if (r.definite) throw new MxError(`host ${name} not found`, false, '5.4.4');
    throw new MxError(`address lookup for ${name} failed: ${r.error}`, true, '4.4.3');
  }

  private async resolveHost(name: string): Promise<{ addresses: string[]; definite: boolean; error?: string }> {
    if (isIP(name)) return { addresses: [name], definite: true };
    const [v4, v6] = await Promise.allSettled([this.resolver.resolve4(name), this.resolver.resolve6(name)]);
    const addresses = [...(v4.status === 'fulfilled' ? v4.value : []), ...(v6.status === 'fulfilled' ? v6.value : [])];
    const codes = [v4, v6].filter((r) => r.status === 'rejected').map((r) => dnsCode((r as PromiseRejectedResult).reason));
    const definite = codes.length === 2 ? codes.every((c) => DEFINITE_NONE.has(c)) : true;
    return { addresses, definite, ...(codes.length ? { error: [...new Set(codes)].join('/') } : {}) };
  }
}

/** `[192.0.2.1]` → 192.0.2.1, `[IPv6:2001:db8::1]` → 2001:db8::1, a bare IP → itself; else null. */
export function addressLiteral(domain: string): string | null {
  const s = domain.trim();
  const m = /^\[(?:ipv6:)?([^\]]+)\]$/i.exec(s);
  const candidate = m ? m[1] : s;
  return isIP(candidate) ? candidate.toLowerCase() : null;
}
