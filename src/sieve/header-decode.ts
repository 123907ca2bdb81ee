/** RFC 5228 §2.7.2: header values are compared after RFC 2047 decoding (an invalid word stays as written). */
import libmime from 'libmime';

export function decodeHeaderValue(v: string): string {
  if (!v.includes('=?')) return v;
  try {
    return libmime.decodeWords(v);
  } catch {
    return v;
  }
}
