/**
 * The ManageSieve command reader (RFC 5804 §4 formal syntax): a command is an atom and arguments separated by
 * spaces, ended by CRLF. An argument is a quoted string, a literal `{N+}` CRLF followed by N octets, or a number.
 * Bytes arrive in chunks; `push` returns every command complete so far, so pipelined commands queue up in order.
 *
 * Leniencies, each harmless: a bare LF ends a line as CRLF does (nothing here carries mail that could be
 * smuggled), and a synchronising literal `{N}` is read like `{N+}` — RFC 5804 §4 has clients send only `{N+}`, and
 * ManageSieve has no continuation for a client literal, so the octets can only follow at once.
 * A literal longer than `maxLiteral` is read and dropped (the client sends it anyway) and stands in the command as
 * `{ kind: 'too-large' }`, so PUTSCRIPT can answer NO (QUOTA/MAXSIZE) and the session stays in step.
 */

export type Token =
  | { kind: 'atom'; value: string }
  | { kind: 'string'; value: Buffer; literal: boolean }
  | { kind: 'number'; value: number }
  | { kind: 'too-large'; size: number };

export type ParsedLine = { tokens: Token[] } | { error: string };

/** RFC 5804 §4: number = 1*DIGIT with a value in 0..4,294,967,295. */
const MAX_NUMBER = 4_294_967_295;

type State =
  | { kind: 'line' }
  | { kind: 'literal'; size: number; keep: boolean; got: Buffer[]; have: number };

export class CommandParser {
  private buf: Buffer = Buffer.alloc(0);
  private tokens: Token[] = [];
  private state: State = { kind: 'line' };
  /** A line that failed to parse is skipped up to its end (not through literals: their size is unknown then). */
  private skipping: string | null = null;

  /**
   * @param maxLine longest line (without literals) accepted; a longer one is an error and is skipped.
   * @param maxLiteral largest literal kept in memory; larger ones are discarded as they arrive.
   */
  constructor(
    private readonly maxLine: number,
    private readonly maxLiteral: number,
  ) {}

  push(chunk: Buffer): ParsedLine[] {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const out: ParsedLine[] = [];
    for (;;) {
      if (this.state.kind === 'literal') {
        const st = this.state;
        const take = Math.min(st.size - st.have, this.buf.length);
        if (st.keep && take > 0) st.got.push(this.buf.subarray(0, take));
        st.have += take;
        this.buf = this.buf.subarray(take);
        if (st.have < st.size) break;
        this.tokens.push(st.keep ? { kind: 'string', value: Buffer.concat(st.got), literal: true } : { kind: 'too-large', size: st.size });
        this.state = { kind: 'line' };
        continue;
      }
      const lf = this.buf.indexOf(0x0a);
      if (lf < 0) {
        if (this.buf.length > this.maxLine) {
          // Keep nothing of an endless line; its end will be skipped when it comes.
          this.buf = Buffer.alloc(0);
          if (this.skipping === null) this.skipping = 'line too long';
        }
        break;
      }
      const end = lf > 0 && this.buf[lf - 1] === 0x0d ? lf - 1 : lf;
      const line = this.buf.subarray(0, end);
      this.buf = this.buf.subarray(lf + 1);
      if (this.skipping !== null) {
        out.push({ error: this.skipping });
        this.reset();
        continue;
      }
      if (line.length > this.maxLine) {
        out.push({ error: 'line too long' });
        this.reset();
        continue;
      }
      const r = this.scan(line);
      if (r === 'literal') continue;
      if (typeof r === 'string') out.push({ error: r });
      else out.push({ tokens: this.tokens });
      this.reset();
    }
    return out;
  }

  /** Drops everything not yet returned (STARTTLS: nothing sent before the handshake may be acted on). */
  clear(): void {
    this.buf = Buffer.alloc(0);
    this.reset();
  }

  private reset(): void {
    this.tokens = [];
    this.state = { kind: 'line' };
    this.skipping = null;
  }

  /** Tokens of one line into this.tokens; 'literal' when the line ends with a literal header; else an error or ok. */
  private scan(line: Buffer): 'literal' | string | { ok: true } {
    let i = 0;
    const n = line.length;
    while (i < n) {
      if (this.tokens.length > 0 || i > 0) {
        // Arguments are separated by one SP (RFC 5804 §4); a literal's octets are followed directly by SP or CRLF.
        if (line[i] !== 0x20) return 'expected a space between arguments';
        i++;
        if (i >= n) return 'unexpected space at the end of the line';
      }
      const c = line[i]!;
      if (c === 0x22) {
        const r = quoted(line, i);
        if (typeof r === 'string') return r;
        this.tokens.push({ kind: 'string', value: r.value, literal: false });
        i = r.next;
      } else if (c === 0x7b) {
        const close = line.indexOf(0x7d, i);
        if (close < 0 || close !== n - 1) return 'a literal must end its line';
        const m = /^\{(\d{1,10})(\+?)\}$/.exec(line.toString('latin1', i, n));
        if (!m) return 'invalid literal';
        const size = Number(m[1]);
        if (size > MAX_NUMBER) return 'literal too large';
        this.state = { kind: 'literal', size, keep: size <= this.maxLiteral, got: [], have: 0 };
        return 'literal';
      } else if (c >= 0x30 && c <= 0x39) {
        let j = i;
        while (j < n && line[j]! >= 0x30 && line[j]! <= 0x39) j++;
        const value = Number(line.toString('latin1', i, j));
        if (j - i > 10 || value > MAX_NUMBER) return 'number too large';
        this.tokens.push({ kind: 'number', value });
        i = j;
      } else if (isAtomChar(c)) {
        let j = i;
        while (j < n && isAtomChar(line[j]!)) j++;
        this.tokens.push({ kind: 'atom', value: line.toString('latin1', i, j) });
        i = j;
      } else {
        return 'invalid character';
      }
    }
    return { ok: true };
  }
}

function isAtomChar(c: number): boolean {
  return (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x5f || c === 0x2e;
}

/**
 * RFC 5804 §4: quoted = DQUOTE *QUOTED-CHAR DQUOTE; QUOTED-CHAR = SAFE-UTF8-CHAR / "\" QUOTED-SPECIALS, where
 * QUOTED-SPECIALS are DQUOTE and "\". No NUL, CR or LF inside.
 */
function quoted(line: Buffer, start: number): { value: Buffer; next: number } | string {
  const parts: number[] = [];
  for (let i = start + 1; i < line.length; i++) {
    const c = line[i]!;
    if (c === 0x22) return { value: Buffer.from(parts), next: i + 1 };
    if (c === 0x5c) {
      const d = line[i + 1];
      if (d !== 0x22 && d !== 0x5c) return 'invalid escape in a quoted string';
      parts.push(d);
      i++;
      continue;
    }
    if (c === 0x00 || c === 0x0d) return 'invalid character in a quoted string';
    parts.push(c);
  }
  return 'unterminated quoted string';
}
