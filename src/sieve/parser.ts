/**
 * The Sieve grammar of RFC 5228 §8 (lexical tokens §8.1, grammar §8.2) into a syntax tree that keeps the line and
 * column of every token, so that errors point where the user must look ("line 3, column 1: unknown command ...").
 * Meaning (which commands exist, what arguments they take) is checked afterwards in validate.ts.
 */

export class SieveSyntaxError extends Error {
  constructor(
    message: string,
    readonly line: number,
    readonly column: number,
  ) {
    super(message);
  }
}

export interface Pos {
  line: number;
  column: number;
}

export type StringArg = Pos & { kind: 'string'; value: string; multiline: boolean };
export type Arg =
  | StringArg
  | (Pos & { kind: 'list'; items: StringArg[] })
  | (Pos & { kind: 'number'; value: number })
  | (Pos & { kind: 'tag'; name: string });

export interface TestNode extends Pos {
  /** Lower case: identifiers are case-insensitive (RFC 5228 §2.2? §8.1 "identifier"; Pigeonhole agrees). */
  name: string;
  args: Arg[];
  tests: TestNode[];
  /** Whether the tests came in a test-list "( ... )" rather than as one test. */
  testList: boolean;
}

export interface CommandNode extends TestNode {
  /** undefined: the command ended with ";". */
  block?: CommandNode[];
}

type Tok =
  | (Pos & { t: 'id'; v: string })
  | (Pos & { t: 'tag'; v: string })
  | (Pos & { t: 'num'; v: number })
  | (Pos & { t: 'str'; v: string; multiline: boolean })
  | (Pos & { t: 'punct'; v: string })
  | (Pos & { t: 'eof' });

function describe(tok: Tok): string {
  switch (tok.t) {
    case 'id':
      return `identifier '${tok.v}'`;
    case 'tag':
      return `tag ':${tok.v}'`;
    case 'num':
      return `number ${tok.v}`;
    case 'str':
      return 'string';
    case 'punct':
      return `'${tok.v}'`;
    case 'eof':
      return 'end of script';
  }
}

/** RFC 5228 §8.1 lexer. Line ends may be CRLF or a bare LF (scripts are often edited on Unix). */
export function tokenize(src: string): Tok[] {
  const out: Tok[] = [];
  let i = 0;
  let line = 1;
  let lineStart = 0;
  const col = (at: number) => at - lineStart + 1;
  const newline = (at: number) => {
    line++;
    lineStart = at + 1;
  };
  const n = src.length;
  while (i < n) {
    const c = src[i];
    if (c === '\n') {
      newline(i);
      i++;
      continue;
    }
    if (c === ' ' || c === '\t' || c === '\r') {
      i++;
      continue;
    }
    if (c === '#') {
      while (i < n && src[i] !== '\n') i++;
      continue;
    }
    if (c === '/' && src[i + 1] === '*') {
      const sl = line;
      const sc = col(i);
      i += 2;
      // §8.1: bracket comments do not nest; the first "*/" ends it.
      for (;;) {
        if (i >= n) throw new SieveSyntaxError('unterminated comment (missing "*/")', sl, sc);
        if (src[i] === '*' && src[i + 1] === '/') {
          i += 2;
          break;
        }
        if (src[i] === '\n') newline(i);
        i++;
      }
      continue;
    }
    const sl = line;
    const sc = col(i);
    if (c === '"') {
      let v = '';
      i++;
      for (;;) {
        if (i >= n) throw new SieveSyntaxError('unterminated string (missing closing \'"\')', sl, sc);
        const d = src[i];
        if (d === '"') {
          i++;
          break;
        }
        if (d === '\\' && i + 1 < n) {
          // §2.4.2: "\\" and "\"" are the escapes; any other "\x" is read as if the backslash were not there.
          const e = src[i + 1];
          if (e === '\n') newline(i + 1);
          v += e;
          i += 2;
          continue;
        }
        if (d === '\n') newline(i);
        v += d;
        i++;
      }
      // §2.4.2: a quoted string may span lines; its line ends are CRLF whatever the file had.
      out.push({ t: 'str', v: v.replace(/\r?\n/g, '\r\n'), multiline: false, line: sl, column: sc });
      continue;
    }
    if (/[A-Za-z_]/.test(c)) {
      let j = i + 1;
      while (j < n && /[A-Za-z0-9_]/.test(src[j])) j++;
      const word = src.slice(i, j);
      if (word.toLowerCase() === 'text' && src[j] === ':') {
        // §8.1 multi-line = "text:" *(SP / HTAB) (hash-comment / CRLF) *(multiline-literal / multiline-dotstart)
        //   "." CRLF; a line that starts with "." has that dot removed (dot-stuffing).
        j++;
        while (j < n && (src[j] === ' ' || src[j] === '\t')) j++;
        if (src[j] === '#') while (j < n && src[j] !== '\n') j++;
        else if (src[j] === '\r' && src[j + 1] === '\n') j++;
        if (src[j] !== '\n') throw new SieveSyntaxError('"text:" must be followed by the end of the line', sl, sc);
        newline(j);
        j++;
        const lines: string[] = [];
        for (;;) {
          if (j >= n) throw new SieveSyntaxError('unterminated multi-line string (missing a line with only ".")', sl, sc);
          let e = src.indexOf('\n', j);
          if (e < 0) e = n;
          let text = src.slice(j, e);
          if (text.endsWith('\r')) text = text.slice(0, -1);
          if (e < n) newline(e);
          j = e + 1;
          if (text === '.') break;
          lines.push(text.startsWith('.') ? text.slice(1) : text);
        }
        i = j;
        out.push({ t: 'str', v: lines.map((l) => l + '\r\n').join(''), multiline: true, line: sl, column: sc });
        continue;
      }
      out.push({ t: 'id', v: word.toLowerCase(), line: sl, column: sc });
      i = j;
      continue;
    }
    if (c === ':') {
      let j = i + 1;
      if (!/[A-Za-z_]/.test(src[j] ?? '')) throw new SieveSyntaxError('":" must start a tag such as ":is"', sl, sc);
      while (j < n && /[A-Za-z0-9_]/.test(src[j])) j++;
      out.push({ t: 'tag', v: src.slice(i + 1, j).toLowerCase(), line: sl, column: sc });
      i = j;
      continue;
    }
    if (/[0-9]/.test(c)) {
      let j = i;
      while (j < n && /[0-9]/.test(src[j])) j++;
      let v = Number(src.slice(i, j));
      // §2.4.1: K, M and G multiply by 2^10, 2^20 and 2^30 (either case).
      const q = (src[j] ?? '').toUpperCase();
      if (q === 'K' || q === 'M' || q === 'G') {
        v *= q === 'K' ? 1024 : q === 'M' ? 1024 ** 2 : 1024 ** 3;
        j++;
      }
      if (/[A-Za-z0-9_]/.test(src[j] ?? '')) throw new SieveSyntaxError(`invalid number '${src.slice(i, j + 1)}'`, sl, sc);
      if (!Number.isSafeInteger(v)) throw new SieveSyntaxError('number is too large', sl, sc);
      out.push({ t: 'num', v, line: sl, column: sc });
      i = j;
      continue;
    }
    if ('[](){},;'.includes(c)) {
      out.push({ t: 'punct', v: c, line: sl, column: sc });
      i++;
      continue;
    }
    throw new SieveSyntaxError(`unexpected character '${c}'`, sl, sc);
  }
  out.push({ t: 'eof', line, column: col(i) });
  return out;
}

/** RFC 5228 §8.2 grammar: commands = *command. */
export function parse(src: string): CommandNode[] {
  const toks = tokenize(src);
  let p = 0;
  const peek = () => toks[p];
  const next = () => toks[p++];
  const isPunct = (v: string) => {
    const t = toks[p];
    return t.t === 'punct' && t.v === v;
  };
  const fail = (what: string, tok: Tok = peek()): never => {
    throw new SieveSyntaxError(`expected ${what} but found ${describe(tok)}`, tok.line, tok.column);
  };

  function commands(inBlock: boolean): CommandNode[] {
    const out: CommandNode[] = [];
    for (;;) {
      const t = peek();
      if (t.t === 'eof') {
        if (inBlock) fail("'}' to close the block");
        return out;
      }
      if (t.t === 'punct' && t.v === '}') {
        if (!inBlock) throw new SieveSyntaxError("unexpected '}' (no block to close)", t.line, t.column);
        return out;
      }
      out.push(command());
    }
  }

  function command(): CommandNode {
    const t = peek();
    if (t.t !== 'id') fail('a command');
    next();
    const node = testOrCommand(t as Tok & { t: 'id' });
    const end = peek();
    if (end.t === 'punct' && end.v === ';') {
      next();
      return node;
    }
    if (end.t === 'punct' && end.v === '{') {
      next();
      const block = commands(true);
      next(); // '}'
      return { ...node, block };
    }
    return fail(`';' or '{' after the arguments of '${node.name}'`);
  }

  function testOrCommand(id: Tok & { t: 'id' }): CommandNode {
    const args: Arg[] = [];
    for (;;) {
      const t = peek();
      if (t.t === 'str') {
        next();
        args.push({ kind: 'string', value: t.v, multiline: t.multiline, line: t.line, column: t.column });
      } else if (t.t === 'num') {
        next();
        args.push({ kind: 'number', value: t.v, line: t.line, column: t.column });
      } else if (t.t === 'tag') {
        next();
        args.push({ kind: 'tag', name: t.v, line: t.line, column: t.column });
      } else if (t.t === 'punct' && t.v === '[') {
        next();
        const items: StringArg[] = [];
        for (;;) {
          const s = peek();
          if (s.t !== 'str') fail('a string in the string list');
          next();
          const st = s as Tok & { t: 'str' };
          items.push({ kind: 'string', value: st.v, multiline: st.multiline, line: st.line, column: st.column });
          if (isPunct(',')) {
            next();
            continue;
          }
          if (isPunct(']')) {
            next();
            break;
          }
          fail("',' or ']' in the string list");
        }
        args.push({ kind: 'list', items, line: t.line, column: t.column });
      } else break;
    }
    const tests: TestNode[] = [];
    let testList = false;
    const t = peek();
    if (t.t === 'id') {
      next();
      tests.push(testOrCommand(t));
    } else if (t.t === 'punct' && t.v === '(') {
      next();
      testList = true;
      for (;;) {
        const s = peek();
        if (s.t !== 'id') fail('a test in the test list');
        next();
        tests.push(testOrCommand(s as Tok & { t: 'id' }));
        if (isPunct(',')) {
          next();
          continue;
        }
        if (isPunct(')')) {
          next();
          break;
        }
        fail("',' or ')' in the test list");
      }
    }
    return { name: id.v, line: id.line, column: id.column, args, tests, testList };
  }

  return commands(false);
}
