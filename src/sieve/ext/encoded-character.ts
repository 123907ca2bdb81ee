/**
 * encoded-character (RFC 5228 §2.4.2.4): "${hex:...}" octets and "${unicode:...}" code points in strings, decoded
 * when the script is compiled. A sequence that does not follow the syntax stays as written.
 */

/** The decoded string, or an error for a code point outside Unicode's scalar values. */
export function decodeEncodedCharacters(s: string): string | { error: string } {
  if (!s.includes('${')) return s;
  let err: string | undefined;
  // hex-pair-seq = *blank hex-pair *(1*blank hex-pair) *blank (blank = SP / TAB / CRLF)
  const out = s.replace(/\$\{(hex|unicode):([\s0-9A-Fa-f]*)\}/gi, (whole, kind: string, seq: string) => {
    const items = seq.trim() === '' ? [] : seq.trim().split(/[ \t\r\n]+/);
    if (items.length === 0) return whole;
    if (kind.toLowerCase() === 'hex') {
      // hex-pair = 1*2HEXDIG: "${hex:400}" is not an encoding and stays as written.
      if (!items.every((h) => /^[0-9A-Fa-f]{1,2}$/.test(h))) return whole;
      return Buffer.from(items.map((h) => h.padStart(2, '0')).join(''), 'hex').toString('utf8');
    }
    if (!items.every((h) => /^[0-9A-Fa-f]+$/.test(h))) return whole;
    let r = '';
    for (const h of items) {
      const cp = parseInt(h, 16);
      // §2.4.2.4: a value outside 0-D7FF and E000-10FFFF is an error.
      if (!Number.isFinite(cp) || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) || h.replace(/^0+/, '').length > 6) {
        err ??= `invalid unicode character '${h}' in "\${unicode:...}"`;
        return whole;
      }
      r += String.fromCodePoint(cp);
    }
    return r;
  });
  return err ? { error: err } : out;
}
