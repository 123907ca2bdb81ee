/**
 * RFC 4515 §3: in a filter value the characters `*`, `(`, `)`, `\` and NUL are written as `\XX`. We escape every
 * byte outside printable ASCII as well, so no login like `*` or `a)(|(x=*` can change the meaning of a filter.
 */
export function escapeFilterValue(value: string): string {
  let out = '';
  for (const byte of Buffer.from(value, 'utf8')) {
    const c = String.fromCharCode(byte);
    if (byte < 0x20 || byte > 0x7e || c === '*' || c === '(' || c === ')' || c === '\\') {
      out += '\\' + byte.toString(16).padStart(2, '0');
    } else {
      out += c;
    }
  }
  return out;
}

/** Builds `(attr=value)` with the value escaped. */
export function eq(attr: string, value: string): string {
  return `(${attr}=${escapeFilterValue(value)})`;
}

export function or(...parts: string[]): string {
  return parts.length === 1 ? parts[0] : `(|${parts.join('')})`;
}

export function and(...parts: string[]): string {
  return parts.length === 1 ? parts[0] : `(&${parts.join('')})`;
}

/** LDAP_MATCHING_RULE_IN_CHAIN (MS-ADTS §3.1.1.3.4.4.3): walks nested group membership on the DC. */
export const IN_CHAIN = '1.2.840.113556.1.4.1941';

/** `(attr:1.2.840.113556.1.4.1941:=dn)`, the DN escaped as a filter value. */
export function inChain(attr: string, dn: string): string {
  return `(${attr}:${IN_CHAIN}:=${escapeFilterValue(dn)})`;
}

/** People (not computer accounts, which are `user` objects too) and groups. */
export const USER_FILTER = '(&(objectClass=user)(!(objectClass=computer)))';
export const GROUP_FILTER = '(objectClass=group)';
