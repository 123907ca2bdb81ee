/**
 * Line endings on the way in (DESIGN.md §6). smtp-server ends DATA only at <CRLF>.<CRLF> but hands bare LF and
 * bare CR through. We store CRLF only (as Postfix's smtpd_forbid_bare_newline=normalize does) and refuse a
 * message where a bare LF or CR stands next to a line holding a single dot: that is the shape of an SMTP smuggling
 * attempt (a second message hidden for a downstream server that accepts <LF>.<LF> as end of data).
 */
export interface Normalized {
  data: Buffer;
  /** Bare CR or LF converted. */
  bare: number;
  /** A lone-dot line with a bare line ending on either side. */
  smuggling: boolean;
}

const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;

export function normalizeLineEndings(input: Buffer): Normalized {
  // Fast path: no bare CR or LF at all. Counted with Buffer.indexOf (native memchr), not a byte loop in JS: a
  // message has one line break every few dozen bytes, and this runs on every message before the 250.
  let bare = 0;
  for (let i = input.indexOf(LF); i >= 0; i = input.indexOf(LF, i + 1)) {
    if (i === 0 || input[i - 1] !== CR) bare++;
  }
  for (let i = input.indexOf(CR); i >= 0; i = input.indexOf(CR, i + 1)) {
    if (input[i + 1] !== LF) bare++;
  }
  if (bare === 0) return { data: input, bare: 0, smuggling: false };

  const out = Buffer.allocUnsafe(input.length + bare);
  let o = 0;
  let smuggling = false;
  // Was the line break that started the current line bare? (The start of the message counts as a proper break.)
  let prevBreakBare = false;
  let lineStart = 0;
  let i = 0;
  while (i < input.length) {
    const c = input[i];
    if (c !== CR && c !== LF) {
      out[o++] = c;
      i++;
      continue;
    }
    const isCrlf = c === CR && input[i + 1] === LF;
    const thisBreakBare = !isCrlf;
    const lineIsDot = i - lineStart === 1 && input[lineStart] === DOT;
    if (lineIsDot && (prevBreakBare || thisBreakBare)) smuggling = true;
    out[o++] = CR;
    out[o++] = LF;
    i += isCrlf ? 2 : 1;
    lineStart = i;
    prevBreakBare = thisBreakBare;
  }
  return { data: out.subarray(0, o), bare, smuggling };
}
