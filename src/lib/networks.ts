/**
 * IP address lists ("192.0.2.7", "10.0.0.0/8", "2001:db8::/32") as the SMTP access settings hold them
 * (smtp.relayFrom, smtp.trustedNetworks), for the SMTP policy and the filters alike.
 */
import { BlockList, isIP } from 'node:net';

/** A BlockList of the entries; an entry that is not a valid address or network matches nothing. */
export function networkList(entries: readonly string[]): BlockList {
  const list = new BlockList();
  for (const e of entries) {
    const [addr, bits] = e.split('/');
    const family = isIP(addr) === 6 ? 'ipv6' : 'ipv4';
    try {
      if (bits === undefined) list.addAddress(addr, family);
      else list.addSubnet(addr, Number(bits), family);
    } catch {
      // the settings validate networks; a bad one matches nothing
    }
  }
  return list;
}

/** Whether the client matches; IPv4-mapped IPv6 clients (::ffff:192.0.2.7) match IPv4 rules. */
export function clientMatches(list: BlockList, ip: string): boolean {
  const v4 = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip)?.[1];
  if (v4) return list.check(v4, 'ipv4');
  const family = isIP(ip) === 6 ? 'ipv6' : isIP(ip) === 4 ? 'ipv4' : null;
  if (!family) return false;
  try {
    return list.check(ip, family);
  } catch {
    return false;
  }
}

/** Lists are built once per settings value, so a change made with the CLI or the API applies at the next check. */
const cache = new Map<string, BlockList>();

export function inNetworks(entries: readonly string[], ip: string): boolean {
  if (entries.length === 0) return false;
  const key = entries.join(',');
  let list = cache.get(key);
  if (!list) {
    if (cache.size > 32) cache.clear();
    list = networkList(entries);
    cache.set(key, list);
  }
  return clientMatches(list, ip);
}
