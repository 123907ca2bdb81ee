/**
 * compile(): the RFC 5228 §8 grammar (comments, strings, multi-line text with dot-stuffing, numbers, string and
 * test lists), require (§3.2), argument checking (§2.6, §2.7), and errors with the line and column a user must look
 * at — ManageSieve's PUTSCRIPT/CHECKSCRIPT show them.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { compile, SIEVE_EXTENSIONS } from '../../../src/sieve/index.ts';
import { compileError, run, summary } from './run-script.ts';

const msg = ['From: a@example.org', 'To: me@example.com', 'Subject: hi', '', 'body'];

describe('RFC 5228 §8.1 lexical tokens', () => {
  test('hash and bracket comments are ignored; bracket comments end at the first "*/" and do not nest', async () => {
    const r = await run(['require "fileinto"; # a comment', '/* a comment', ' spanning lines /* still comment */', 'fileinto "a"; # tail', '/**/ fileinto /* in between */ "b";'].join('\r\n'), msg);
    assert.deepEqual(summary(r), ['fileinto:a', 'fileinto:b']);
  });

  test('quoted strings: \\\\ and \\" are escapes, any other backslash is dropped (§2.4.2)', async () => {
    const r = await run('require "fileinto"; fileinto "a\\\\b\\"c\\d";', msg);
    assert.deepEqual(summary(r), ['fileinto:a\\b"cd']);
  });

  test('a quoted string may span lines; its line ends are CRLF', async () => {
    const r = await run('require "reject"; reject "line one\nline two";', msg);
    assert.deepEqual(r.actions[0], { type: 'reject', reason: 'line one\r\nline two', ereject: false });
  });

  test('multi-line "text:" strings: a hash comment may follow, lines starting with "." lose it, "." alone ends', async () => {
    const script = ['require "reject";', 'reject text: # the reason', 'first', '..second', '.third', '', '.', ';'].join('\n');
    const r = await run(script, msg);
    assert.deepEqual(r.actions[0], { type: 'reject', reason: 'first\r\n.second\r\nthird\r\n\r\n', ereject: false });
  });

  test('numbers take the K, M and G quantifiers in either case (§2.4.1)', async () => {
    const big = Buffer.alloc(2000, 'x');
    const m = Buffer.concat([Buffer.from('Subject: s\r\n\r\n'), big]);
    assert.deepEqual(summary(await run('if size :over 1k { discard; }', m)), ['discard']);
    assert.deepEqual(summary(await run('if size :over 2K { discard; }', m)), ['keep']);
    assert.deepEqual(summary(await run('if size :under 1M { discard; }', m)), ['discard']);
    assert.deepEqual(summary(await run('if size :under 1g { discard; }', m)), ['discard']);
  });

  test('identifiers and tags are case-insensitive', async () => {
    const r = await run('REQUIRE "fileinto"; IF HEADER :CONTAINS "subject" "HI" { FileInto "x"; }', msg);
    assert.deepEqual(summary(r), ['fileinto:x']);
  });
});

describe('compile errors carry the line and column of the offending token', () => {
  const cases: [string, string, number, number, RegExp][] = [
    ['misspelt command', 'require ["fileinto"];\nif header :contains "subject" "x" {\n  fileinot "a";\n}', 3, 3, /unknown command 'fileinot'/],
    ['extension used without require (§3.2)', '\n\nfileinto "x";', 3, 1, /needs require "fileinto"/],
    ['unknown capability in require', 'require ["fileinto", "frobnicate"];', 1, 22, /unknown extension 'frobnicate'/],
    ['require after another command', 'keep;\nrequire "fileinto";', 2, 1, /require: must come before/],
    ['missing semicolon', 'keep\ndiscard;', 2, 1, /expected ';' after 'keep'/],
    ['missing semicolon at the end', 'keep', 1, 5, /expected ';' or '\{'/],
    ['unterminated string', 'require "fileinto";\nfileinto "abc;\n', 2, 10, /unterminated string/],
    ['unterminated multi-line string', 'require "reject";\nreject text:\nabc\n', 2, 8, /unterminated multi-line/],
    ['unterminated bracket comment', 'keep;\n  /* open', 2, 3, /unterminated comment/],
    ['unbalanced block', 'if true {\n keep;\n', 3, 1, /'\}' to close the block/],
    ['stray closing brace', 'keep;\n}', 2, 1, /unexpected '\}'/],
    ['unknown tag', 'if header :containz "a" "b" { keep; }', 1, 11, /unknown tag ':containz'/],
    ['two match types', 'if header :is :contains "a" "b" { keep; }', 1, 15, /':contains' cannot be used with ':is'/],
    ['tag twice', 'if header :is :is "a" "b" { keep; }', 1, 15, /given twice/],
    ['tag after positional arguments', 'if header "a" :is "b" { keep; }', 1, 15, /must come before the other arguments/],
    ['too few arguments', 'if header :is "a" { keep; }', 1, 4, /header: expects 2 arguments/],
    ['wrong argument type', 'if size :over "big" { keep; }', 1, 15, /argument 1 must be a number/],
    ['size without :over/:under', 'if size 10 { keep; }', 1, 4, /:over or :under/],
    ['unknown comparator', 'if header :comparator "i;klingon" "a" "b" { keep; }', 1, 23, /unknown comparator 'i;klingon'/],
    ['i;ascii-numeric without its require (§2.7.3)', 'if header :comparator "i;ascii-numeric" "a" "1" { keep; }', 1, 23, /needs require "comparator-i;ascii-numeric"/],
    ['i;ascii-numeric with :contains', 'require "comparator-i;ascii-numeric";\nif header :contains :comparator "i;ascii-numeric" "a" "1" { keep; }', 2, 11, /does not support :contains/],
    [':count without relational', 'if header :count "ge" "to" "2" { keep; }', 1, 11, /needs require "relational"/],
    ['bad relation', 'require "relational";\nif header :value "bigger" "a" "b" { keep; }', 2, 18, /invalid relation 'bigger'/],
    ['else without if', 'keep;\nelse { keep; }', 2, 1, /'else' without a preceding 'if'/],
    ['elsif after else', 'if true { keep; } else { keep; } elsif true { keep; }', 1, 34, /'elsif' without a preceding 'if'/],
    ['a test used as a command', 'header :is "a" "b";', 1, 1, /'header' is a test, not a command/],
    ['a command used as a test', 'if keep { stop; }', 1, 4, /'keep' is a command, not a test/],
    ['if without a block', 'if true;', 1, 1, /needs a block/],
    ['block on a simple command', 'keep { stop; }', 1, 1, /does not take a block/],
    ['not with two tests', 'if not (true, false) { keep; }', 1, 4, /takes one test/],
    ['invalid redirect address (§4.2)', 'redirect "not an address";', 1, 10, /invalid address/],
    ['unknown envelope part (§5.4)', 'require "envelope";\nif envelope "sender" "x" { keep; }', 2, 13, /unknown envelope part 'sender'/],
    ['address test on a header without addresses (§5.1)', 'if address "subject" "x" { keep; }', 1, 12, /does not hold addresses/],
    ['bad character', 'keep; @', 1, 7, /unexpected character '@'/],
    ['bad number', 'if size :over 10X { keep; }', 1, 15, /invalid number/],
  ];
  for (const [name, script, line, column, message] of cases) {
    test(name, () => {
      const e = compileError(script);
      assert.match(e.message, message);
      assert.deepEqual([e.line, e.column], [line, column], `${e.message} at ${e.line}:${e.column}`);
    });
  }

  test('several errors are reported, each with its place', () => {
    const r = compile('require "fileinto";\nfileinot "a";\nkeep;\nredirekt "b@example.com";\n');
    assert.equal(r.ok, false);
    if (r.ok) return;
    assert.deepEqual(
      r.errors.map((e) => [e.line, e.column]),
      [
        [2, 1],
        [4, 1],
      ],
    );
  });

  test('a script above the size limit is refused (Pigeonhole sieve_max_script_size, 1M by default)', () => {
    const r = compile('keep;' + ' '.repeat(100), { maxScriptBytes: 50 });
    assert.equal(r.ok, false);
    if (!r.ok) assert.match(r.errors[0].message, /too large \(105 bytes, the limit is 50\)/);
    assert.equal(compile('#' + 'x'.repeat(1024 * 1024)).ok, false);
    assert.equal(compile('#' + 'x'.repeat(1000)).ok, true);
  });

  test('a server can disable extensions: requiring one is then an error', () => {
    const r = compile('require "vacation";', { extensions: new Set(['fileinto']) });
    assert.equal(r.ok, false);
    if (!r.ok) assert.match(r.errors[0].message, /'vacation' is not enabled/);
  });
});

describe('require (RFC 5228 §3.2)', () => {
  test('SIEVE_EXTENSIONS lists what compile() accepts, and every one of them can be required', () => {
    for (const ext of SIEVE_EXTENSIONS) assert.equal(compile(`require "${ext}";`).ok, true, ext);
    assert.ok(SIEVE_EXTENSIONS.includes('vacation-seconds'));
  });

  test('the built-in comparators may be required and change nothing', () => {
    assert.equal(compile('require ["comparator-i;octet", "comparator-i;ascii-casemap"]; keep;').ok, true);
  });

  test('a string list of tests and a single test are both accepted by allof/anyof (§2.5.1)', () => {
    assert.equal(compile('if anyof (not exists ["From", "Date"], header :contains "from" "fool@example.com") { discard; }').ok, true);
    assert.equal(compile('if allof true { discard; }').ok, true);
  });
});
