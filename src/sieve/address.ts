/**
 * Address parts (RFC 5228 §2.7.4) and subaddresses (RFC 5233): the addresses of a header field and the part of
 * each that address/envelope compare.
 */
import addressparser from 'nodemailer/lib/addressparser';

/** RFC 5233 §1: the separator between user and detail (Postfix's recipient_delimiter, Dovecot's default). */
export const SUBADDRESS_SEPARATOR = '+';

/** The mailbox addresses of an address header value (groups flattened; an empty group has none). */
export function parseAddressList(value: string): string[] {
  const out: string[] = [];
  for (const a of addressparser(value, { flatten: true })) {
    if (a.address !== undefined && a.address !== '') out.push(a.address);
  }
  return out;
}

/**
 * The part of one address to compare, or null when the address has no such part (RFC 5228 §2.7.4: an address
 * that is not syntactically valid is not matched by :localpart or :domain; RFC 5233 §4: without a separator there
 * is no :detail).
 */
export function addressPart(address: string, part: string): string | null {
  if (part === 'all') return address;
  const at = address.lastIndexOf('@');
  const local = at < 0 ? address : address.slice(0, at);
  const domain = at < 0 ? null : address.slice(at + 1);
  switch (part) {
    case 'localpart':
      return at < 0 && address !== '' ? null : local;
    case 'domain':
      return domain;
    case 'user': {
      if (at < 0 && address !== '') return null;
      const s = local.indexOf(SUBADDRESS_SEPARATOR);
      return s < 0 ? local : local.slice(0, s);
    }
    case 'detail': {
      if (at < 0 && address !== '') return null;
      const s = local.indexOf(SUBADDRESS_SEPARATOR);
      return s < 0 ? null : local.slice(s + 1);
    }
    default:
      return address;
  }
}

/** A syntax check for addresses a script gives (redirect, vacation :from): local@domain without blanks. */
export function isValidAddress(a: string): boolean {
  return /^[^\s@<>()",;:\\[\]]+(\.[^\s@<>()",;:\\[\]]+)*@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*$/.test(a) || /^"[^"\r\n]*"@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*$/.test(a);
}
