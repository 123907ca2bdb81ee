import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  CommandReader,
  formatSequenceSet,
  inSequenceSet,
  MAX_LINE,
  parseCommand,
  ParseError,
  parseFetchAtt,
  parseFetchAtts,
  parseSequenceSet,
  peekCommand,
  type LiteralDecision,
  type Token,
} from '../../../src/imap/parser.ts';

const cmd = (s: string) => parseCommand(Buffer.from(s));
const str = (t: Token) => (t.type === 'string' ? t.value.toString() : assert.fail(`not a string: ${JSON.stringify(t)}`));

/** Feeds chunks to a reader and records what it reports. */
function read(chunks: string[], decide: (size: number, nonSync: boolean, head: string) => LiteralDecision = () => ({ ok: true })) {
  const frames: string[] = [];
  const events: string[] = [];
  const reader = new CommandReader({
    frame: (f) => {
      frames.push(f.toString('latin1'));
      if (peekCommand(f).command === 'STARTTLS') return 'stop';
    },
    literal: (head, size, nonSync) => {
      events.push(`literal ${size}${nonSync ? '+' : ''}`);
      return decide(size, nonSync, head.toString('latin1'));
    },
    refused: (head, d, nonSync) => events.push(`refused ${peekCommand(head).tag} ${d.status}${nonSync ? ' nonsync' : ''}`),
    tooLong: (head) => events.push(`too long ${peekCommand(head).tag}`),
  });
  for (const c of chunks) reader.push(Buffer.from(c, 'latin1'));
  return { frames, events, reader };
}

describe('IMAP tokenizer', () => {
  test('reads tag, command, atoms, quoted strings and NIL', () => {
    const c = cmd('a1 LOGIN john.smith "pa ss"\r\n');
    assert.equal(c.tag, 'a1');
    assert.equal(c.command, 'LOGIN');
    assert.equal(c.uid, false);
    assert.deepEqual(c.args[0], { type: 'atom', value: 'john.smith' });
    assert.equal(str(c.args[1]), 'pa ss');
  });

  test('unescapes \\" and \\\\ in quoted strings and refuses other escapes', () => {
    assert.equal(str(cmd('a LOGIN u "a\\"b\\\\c"\r\n').args[1]), 'a"b\\c');
    assert.throws(() => cmd('a LOGIN u "a\\nb"\r\n'), ParseError);
    assert.throws(() => cmd('a LOGIN u "open\r\n'), (e: ParseError) => e.tag === 'a');
  });

  test('reads synchronizing and non-synchronizing literals inline, keeping their bytes', () => {
    const c = cmd('a APPEND INBOX (\\Seen) {12}\r\nhello\r\nworld\r\n');
    assert.equal(c.args.length, 3);
    assert.deepEqual(c.args[1], { type: 'list', items: [{ type: 'atom', value: '\\Seen' }] });
    assert.deepEqual(c.args[2], { type: 'string', value: Buffer.from('hello\r\nworld'), literal: true });
    const plus = cmd('a LOGIN {4+}\r\njohn {2+}\r\npw\r\n');
    assert.equal(str(plus.args[0]), 'john');
    assert.equal(str(plus.args[1]), 'pw');
    assert.throws(() => cmd('a LOGIN {10}\r\nshort\r\n'), /Truncated literal/);
  });

  test('splits UID commands and upper-cases the name', () => {
    const c = cmd('x uid fetch 1:* (FLAGS)\r\n');
    assert.equal(c.command, 'FETCH');
    assert.equal(c.uid, true);
    assert.deepEqual(peekCommand(Buffer.from('x UID fetch 1 FLAGS')), { tag: 'x', command: 'FETCH' });
  });

  test('keeps a section with spaces and parentheses in one atom', () => {
    const c = cmd('f FETCH 1 (UID BODY.PEEK[HEADER.FIELDS (From To)]<0.100> BODY[1.2.MIME])\r\n');
    const list = c.args[1];
    assert.equal(list.type, 'list');
    assert.deepEqual(
      list.type === 'list' ? list.items.map((t) => (t.type === 'atom' ? t.value : '?')) : [],
      ['UID', 'BODY.PEEK[HEADER.FIELDS (From To)]<0.100>', 'BODY[1.2.MIME]'],
    );
  });

  test('"[" outside a FETCH section is an ordinary atom character (RFC 3501 §9 ATOM-CHAR)', () => {
    assert.deepEqual(cmd('s SELECT a[b\r\n').args, [{ type: 'atom', value: 'a[b' }]);
    assert.deepEqual(cmd('s LIST "" x[%\r\n').args[1], { type: 'atom', value: 'x[%' });
    // A section still keeps its spaces, whatever the case of the item name.
    assert.deepEqual(cmd('f FETCH 1 binary.peek[1 2]\r\n').args[1], { type: 'atom', value: 'binary.peek[1 2]' });
  });

  test('reads nested lists and refuses unbalanced ones', () => {
    const c = cmd('s SEARCH (OR (FROM a) (TO b)) ALL\r\n');
    assert.equal(c.args[0].type, 'list');
    assert.throws(() => cmd('s SEARCH (FROM a\r\n'), /Unterminated list/);
    assert.throws(() => cmd('s SEARCH FROM a)\r\n'), ParseError);
  });

  test('refuses a missing command and a tag with wildcards', () => {
    assert.throws(() => cmd('a1\r\n'), /Missing command/);
    assert.throws(() => cmd('a* NOOP\r\n'), /Invalid tag/);
    assert.throws(() => cmd('a  NOOP\r\n'), ParseError);
  });
});

describe('IMAP command reader', () => {
  test('cuts pipelined commands and waits for the rest of a split line', () => {
    const { frames } = read(['a NOOP\r\nb CAPA', 'BILITY\r\n']);
    assert.deepEqual(frames, ['a NOOP\r\n', 'b CAPABILITY\r\n']);
  });

  test('asks about a literal before reading it and keeps it in the frame', () => {
    const { frames, events } = read(['a APPEND INBOX {5}\r\n', 'he', 'llo\r\n']);
    assert.deepEqual(events, ['literal 5']);
    assert.deepEqual(frames, ['a APPEND INBOX {5}\r\nhello\r\n']);
  });

  test('a refused synchronizing literal drops the command and goes on', () => {
    const { frames, events } = read(['a APPEND INBOX {999999}\r\nb NOOP\r\n'], () => ({ ok: false, status: 'NO', code: 'TOOBIG', text: 'too big' }));
    assert.deepEqual(events, ['literal 999999', 'refused a NO']);
    assert.deepEqual(frames, ['b NOOP\r\n']);
  });

  test('a refused non-synchronizing literal stops the reader (the data is already coming)', () => {
    const { frames, events } = read(['a APPEND INBOX {999999+}\r\nxxxx\r\nb NOOP\r\n'], () => ({ ok: false, status: 'BAD', text: 'too big' }));
    assert.deepEqual(events, ['literal 999999+', 'refused a BAD nonsync']);
    assert.deepEqual(frames, []);
  });

  test('a literal may contain a line ending in something that looks like a literal', () => {
    const { frames, events } = read(['a APPEND INBOX {6}\r\n{3}\r\n\r\n']);
    assert.deepEqual(events, ['literal 6']);
    assert.deepEqual(frames, ['a APPEND INBOX {6}\r\n{3}\r\n\r\n']);
  });

  test(`refuses a line over ${MAX_LINE} bytes and recovers at the next line`, () => {
    const long = 'a NOOP ' + 'x'.repeat(MAX_LINE + 10);
    const { frames, events } = read([long.slice(0, 40000), long.slice(40000), '\r\nb NOOP\r\n']);
    assert.deepEqual(events, ['too long a']);
    assert.deepEqual(frames, ['b NOOP\r\n']);
  });

  test('stops at STARTTLS and discards what was pipelined after it', () => {
    const { frames, reader } = read(['a STARTTLS\r\nb LOGIN x y\r\n', 'c NOOP\r\n']);
    assert.deepEqual(frames, ['a STARTTLS\r\n']);
    reader.reset();
    reader.push(Buffer.from('d NOOP\r\n'));
    assert.deepEqual(frames, ['a STARTTLS\r\n', 'd NOOP\r\n']);
  });
});

describe('sequence sets', () => {
  test('parses ranges, lists and "*"', () => {
    assert.deepEqual(parseSequenceSet('2,4:7'), [
      [2, 2],
      [4, 7],
    ]);
    assert.deepEqual(parseSequenceSet('1:*'), [[1, Infinity]]);
    assert.deepEqual(parseSequenceSet('9:3'), [[3, 9]]);
    for (const bad of ['', '0', '1:0', 'a', '1,,2', '1:2:3', '4294967296']) assert.throws(() => parseSequenceSet(bad), bad);
  });

  test('"*" is the largest number in use, also in reversed ranges', () => {
    const set = parseSequenceSet('5:*');
    assert.equal(inSequenceSet(set, 3, 3), true, '5:* with 3 messages is 3:5');
    assert.equal(inSequenceSet(set, 2, 3), false);
    assert.equal(inSequenceSet(parseSequenceSet('*'), 7, 7), true);
    assert.equal(inSequenceSet(parseSequenceSet('2,4:7'), 3, 10), false);
  });

  test('formats compactly', () => {
    assert.equal(formatSequenceSet([1, 2, 3, 7, 9, 10]), '1:3,7,9:10');
    assert.equal(formatSequenceSet([]), '');
  });
});

describe('FETCH attributes', () => {
  const atts = (s: string) => parseFetchAtts(cmd(`f FETCH 1 ${s}\r\n`).args[1]);

  test('expands the macros', () => {
    assert.deepEqual(
      atts('FAST').map((a) => (a.kind === 'simple' ? a.name : '')),
      ['FLAGS', 'INTERNALDATE', 'RFC822.SIZE'],
    );
    assert.equal(atts('ALL').length, 4);
    assert.equal(atts('FULL').length, 5);
  });

  test('parses sections, PEEK and partials, with the response name', () => {
    const a = parseFetchAtt('BODY.PEEK[HEADER.FIELDS (from "To")]<10.20>');
    assert.equal(a.kind, 'section');
    if (a.kind !== 'section') return;
    assert.deepEqual(a.section.fields, ['FROM', 'TO']);
    assert.equal(a.section.peek, true);
    assert.deepEqual(a.section.partial, { start: 10, length: 20 });
    assert.equal(a.section.responseName, 'BODY[HEADER.FIELDS (FROM TO)]<10>');
    const b = parseFetchAtt('body[1.2.text]');
    assert.ok(b.kind === 'section' && b.section.specifier === 'TEXT' && b.section.path.join('.') === '1.2' && !b.section.peek);
    const c = parseFetchAtt('BODY[]');
    assert.ok(c.kind === 'section' && c.section.path.length === 0 && c.section.responseName === 'BODY[]');
    const m = parseFetchAtt('BODY[2.MIME]');
    assert.ok(m.kind === 'section' && m.section.responseName === 'BODY[2.MIME]');
  });

  test('refuses malformed sections', () => {
    for (const bad of ['BODY[MIME]', 'BODY[0]', 'BODY[1.X]', 'BODY[HEADER.FIELDS]', 'BODY[TEXT (A)]', 'BODY[]<1.0>', 'BODY[.TEXT]', 'FOO', 'BINARY[TEXT]']) {
      assert.throws(() => parseFetchAtt(bad), Error, bad);
    }
  });
});
