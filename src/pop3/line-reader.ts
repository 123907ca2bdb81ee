/**
 * Splits a POP3 byte stream into lines. RFC 1939 §3 ends lines with CRLF; a bare LF is accepted as the end of a
 * line too (telnet-style clients), since POP3 commands carry no message data that could be smuggled.
 */
export class LineReader {
  private buf: Buffer = Buffer.alloc(0);

  /** @param maxLine longest line accepted, without its line end. */
  constructor(private readonly maxLine: number) {}

  /** Feeds bytes; returns the complete lines, or 'too-long' once a line exceeds the limit. */
  push(chunk: Buffer): string[] | 'too-long' {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const lines: string[] = [];
    let start = 0;
    for (;;) {
      const lf = this.buf.indexOf(0x0a, start);
      if (lf < 0) break;
      const end = lf > start && this.buf[lf - 1] === 0x0d ? lf - 1 : lf;
      if (end - start > this.maxLine) return 'too-long';
      lines.push(this.buf.toString('utf8', start, end));
      start = lf + 1;
    }
    this.buf = this.buf.subarray(start);
    if (this.buf.length > this.maxLine + 1) return 'too-long';
    return lines;
  }

  /** Drops everything not yet returned (STLS: nothing sent before the handshake may be acted on). */
  clear(): void {
    this.buf = Buffer.alloc(0);
  }
}
