import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CommandParser, type ParsedLine, type Token } from '../../../src/managesieve/parser.ts';
import { responseLine, sieveString } from '../../../src/managesieve/response.ts';

function show(lines: ParsedLine[]): unknown[] {
  return lines.map((l) =>
    'error' in l
      ? { error: l.error }
      : l.tokens.map((t: Token) => (t.kind === 'string' ? `${t.literal ? 'L' : 'Q'}:${t.value.toString('utf8')}` : t.kind === 'too-large' ? `too-large:${t.size}` : `${t.kind}:${t.value}`)),
  );
}

function parseAll(input: string | Buffer, maxLiteral = 1000): unknown[] {
  return show(new CommandParser(200, maxLiteral).push(Buffer.from(input)));
}

test('commands with atoms, quoted strings, numbers and {N+} / {N} literals (RFC 5804 §4)', () => {
  assert.deepEqual(parseAll('HAVESPACE "myscript" 999999\r\n'), [['atom:HAVESPACE', 'Q:myscript', 'number:999999']]);
  assert.deepEqual(parseAll('PUTSCRIPT "a" {11+}\r\nkeep;\r\nstop\r\n'), [['atom:PUTSCRIPT', 'Q:a', 'L:keep;\r\nstop']]);
  assert.deepEqual(parseAll('RENAMESCRIPT {3}\r\na b "c"\r\n'), [['atom:RENAMESCRIPT', 'L:a b', 'Q:c']]);
  assert.deepEqual(parseAll('PUTSCRIPT "q\\"x\\\\" {0+}\r\n\r\n'), [['atom:PUTSCRIPT', 'Q:q"x\\', 'L:']]);
  assert.deepEqual(parseAll('NOOP\nLOGOUT\r\n'), [['atom:NOOP'], ['atom:LOGOUT']], 'a bare LF ends a line too');
});

test('the same commands fed one byte at a time come out the same', () => {
  const input = 'PUTSCRIPT "s" {9+}\r\nkeep;\r\n\r\n\r\nGETSCRIPT "s"\r\nHAVESPACE "s" 12\r\n';
  const whole = parseAll(input);
  const p = new CommandParser(200, 1000);
  const lines: ParsedLine[] = [];
  for (const b of Buffer.from(input)) lines.push(...p.push(Buffer.from([b])));
  assert.deepEqual(show(lines), whole);
  assert.equal(whole.length, 3);
});

test('a literal above the limit is read and dropped, and the next command parses', () => {
  const big = 'x'.repeat(50);
  assert.deepEqual(parseAll(`PUTSCRIPT "a" {50+}\r\n${big}\r\nNOOP\r\n`, 10), [['atom:PUTSCRIPT', 'Q:a', 'too-large:50'], ['atom:NOOP']]);
});

test('syntax errors are reported per line and the parser resynchronises at the next line', () => {
  assert.deepEqual(parseAll('GETSCRIPT "open\r\nNOOP\r\n'), [{ error: 'unterminated quoted string' }, ['atom:NOOP']]);
  assert.deepEqual(parseAll('GETSCRIPT "a\\n"\r\n'), [{ error: 'invalid escape in a quoted string' }]);
  assert.deepEqual(parseAll('NOOP  "x"\r\n'), [{ error: 'invalid character' }]);
  assert.deepEqual(parseAll('NOOP"x"\r\n'), [{ error: 'expected a space between arguments' }]);
  assert.deepEqual(parseAll('NOOP {5+} "x"\r\n'), [{ error: 'a literal must end its line' }]);
  assert.deepEqual(parseAll('NOOP {x}\r\n'), [{ error: 'invalid literal' }]);
  assert.deepEqual(parseAll('HAVESPACE "a" 4294967296\r\n'), [{ error: 'number too large' }]);
  assert.deepEqual(parseAll('NOOP (x)\r\n'), [{ error: 'invalid character' }]);
  assert.deepEqual(parseAll('NOOP \r\n'), [{ error: 'unexpected space at the end of the line' }]);
});

test('a line longer than the limit is refused once and skipped to its end, even when it arrives in pieces', () => {
  const p = new CommandParser(20, 100);
  const out: ParsedLine[] = [];
  out.push(...p.push(Buffer.from('NOOP "' + 'y'.repeat(30))));
  out.push(...p.push(Buffer.from('y'.repeat(30) + '"\r\nNOOP\r\n')));
  assert.deepEqual(show(out), [{ error: 'line too long' }, ['atom:NOOP']]);
});

test('clear() forgets bytes not yet returned (STARTTLS)', () => {
  const p = new CommandParser(200, 100);
  assert.deepEqual(show(p.push(Buffer.from('NOOP\r\nPUTSCRIPT "a" {10+}\r\nkee'))), [['atom:NOOP']]);
  p.clear();
  assert.deepEqual(show(p.push(Buffer.from('LOGOUT\r\n'))), [['atom:LOGOUT']]);
});

test('responses: quoted when safe, a literal for line breaks, codes in parentheses', () => {
  assert.equal(sieveString('a "b" \\c').toString(), '"a \\"b\\" \\\\c"');
  assert.equal(sieveString('two\r\nlines').toString(), '{10}\r\ntwo\r\nlines');
  assert.equal(responseLine('NO', 'QUOTA/MAXSIZE', 'Too big').toString(), 'NO (QUOTA/MAXSIZE) "Too big"\r\n');
  assert.equal(responseLine('OK').toString(), 'OK\r\n');
  assert.equal(sieveString('ü').toString(), '"ü"');
});
