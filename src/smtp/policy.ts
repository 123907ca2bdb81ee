/**
 * The seed's "SMTP access" page as functions: who is inside the local network, who may relay, what a valid HELO is.
 */
export { clientMatches, networkList } from '../lib/networks.js';

/** A HELO/EHLO argument that names a host (RFC 5321 §4.1.1.1 / RFC 1123 §5.2.5): an FQDN or an address literal. */
export function isValidHelo(helo: string | undefined | false): boolean {
  if (!helo) return false;
  if (/^\[(IPv6:[0-9a-f:.]+|\d{1,3}(\.\d{1,3}){3})\]$/i.test(helo)) return true;
  if (helo.length > 253 || !helo.includes('.')) return false;
  return helo.split('.').every((l) => /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i.test(l)) && !/^\d+$/.test(helo.split('.').at(-1)!);
}

/**
 * Address forms that route mail somewhere other than where they seem to (RFC 5321 §3.6.1, §4.1.1.3 Appendix C):
 * source routes `@a,@b:user@c`, the percent hack `user%other@us`, bang paths `host!user@us`, quoted local parts
 * `"user@other"@us` and extra `@`s. We route none of them, from anyone.
 */
export function isRoutingTrick(address: string): boolean {
  const at = address.lastIndexOf('@');
  const local = at < 0 ? address : address.slice(0, at);
  return address.startsWith('@') || address.includes(':') || /[%!"\\@]/.test(local) || local.includes(',');
}
