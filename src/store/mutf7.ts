/**
 * IMAP's modified UTF-7 (RFC 3501 §5.1.3). Dovecot stores folder names on disk in it by default
 * (`mailbox_list_utf8 = no`), so the Maildir++ directory of "Entwürfe" is `.Entw&APw-rfe`; the IMAP server will
 * also need it for clients that do not enable UTF8=ACCEPT. It could move to src/lib once IMAP uses it.
 */

const PRINTABLE_MIN = 0x20;
const PRINTABLE_MAX = 0x7e;

/** UTF-8 (JS string) → modified UTF-7. */
export function encodeMutf7(text: string): string {
  let out = '';
  let run: number[] = []; // UTF-16 code units waiting to be base64-encoded
  const flush = (): void => {
    if (run.length === 0) return;
    const bytes = Buffer.alloc(run.length * 2);
    run.forEach((unit, i) => bytes.writeUInt16BE(unit, i * 2));
    // RFC 3501 §5.1.3: modified BASE64 uses "," for "/" and omits the "=" padding.
    out += `&${bytes.toString('base64').replace(/=+$/, '').replace(/\//g, ',')}-`;
    run = [];
  };
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit >= PRINTABLE_MIN && unit <= PRINTABLE_MAX) {
      flush();
      out += unit === 0x26 ? '&-' : text[i];
    } else {
      run.push(unit);
    }
  }
  flush();
  return out;
}

/** Modified UTF-7 → JS string. Throws on malformed input (an unterminated or badly padded shift sequence). */
export function decodeMutf7(text: string): string {
  let out = '';
  let i = 0;
  while (i < text.length) {
    const amp = text.indexOf('&', i);
    if (amp < 0) {
      out += text.slice(i);
      break;
    }
    out += text.slice(i, amp);
    const dash = text.indexOf('-', amp + 1);
    if (dash < 0) throw new SyntaxError(`unterminated modified UTF-7 sequence in ${JSON.stringify(text)}`);
    const b64 = text.slice(amp + 1, dash);
    if (b64 === '') {
      out += '&';
    } else {
      if (!/^[A-Za-z0-9+,]+$/.test(b64)) throw new SyntaxError(`bad modified UTF-7 sequence in ${JSON.stringify(text)}`);
      const bytes = Buffer.from(b64.replace(/,/g, '/'), 'base64');
      if (bytes.length % 2 !== 0) throw new SyntaxError(`bad modified UTF-7 sequence in ${JSON.stringify(text)}`);
      for (let j = 0; j < bytes.length; j += 2) out += String.fromCharCode(bytes.readUInt16BE(j));
    }
    i = dash + 1;
  }
  return out;
}
