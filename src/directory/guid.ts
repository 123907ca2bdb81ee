/**
 * objectGUID: the identity of an AD object that survives renames and moves (issue 13; Exchange keys mailboxes to it).
 * AD stores it as 16 bytes; the canonical string form (what `Get-ADUser` and `samba-tool user show` print) reads the
 * first three fields little-endian, as a Windows GUID struct is laid out ([MS-DTYP] §2.3.4.2).
 */

const CANONICAL_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** True for the lower-case canonical form `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`. */
export function isGuid(value: string): boolean {
  return CANONICAL_RE.test(value);
}

/** 16 bytes as read from AD → canonical lower-case string. Anything else → undefined. */
export function decodeGuid(bytes: Buffer): string | undefined {
  if (bytes.length !== 16) return undefined;
  const h = (i: number) => bytes[i]!.toString(16).padStart(2, '0');
  const le = (...idx: number[]) => idx.map(h).join('');
  return `${le(3, 2, 1, 0)}-${le(5, 4)}-${le(7, 6)}-${le(8, 9)}-${le(10, 11, 12, 13, 14, 15)}`;
}

/** Canonical string (any case) → the 16 bytes AD stores. Throws RangeError for anything else. */
export function encodeGuid(guid: string): Buffer {
  const g = guid.trim().toLowerCase();
  if (!isGuid(g)) throw new RangeError(`not a GUID: ${JSON.stringify(guid)}`);
  const hex = g.replace(/-/g, '');
  const b = Buffer.from(hex, 'hex');
  const out = Buffer.alloc(16);
  [3, 2, 1, 0, 5, 4, 7, 6].forEach((src, dst) => (out[dst] = b[src]!));
  b.copy(out, 8, 8);
  return out;
}

/**
 * The assertion value of `(objectGUID=...)`: every byte escaped as `\xx`, which RFC 4515 §3 allows for any octet and
 * requires for NUL, '*', '(', ')' and '\'. Escaping all 16 keeps binary values out of the filter's text entirely.
 */
export function guidFilterValue(guid: string): string {
  return [...encodeGuid(guid)].map((b) => `\\${b.toString(16).padStart(2, '0')}`).join('');
}

/** A GUID from an LDAP/LDIF value: the 16 raw bytes, or (LDIF written by hand) the canonical text. */
export function guidFromValue(bytes: Buffer | undefined, text: string | undefined): string | undefined {
  if (bytes && bytes.length === 16) return decodeGuid(bytes);
  const t = text?.trim().toLowerCase();
  return t && isGuid(t) ? t : undefined;
}
