import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { simpleParser } from 'mailparser';
import { createLogger } from '../../../src/lib/logger.ts';
import { decodeWords } from '../../../src/filters/mime.ts';
import { applyMarks, FilterPipeline, type FilterPipelineOptions } from '../../../src/filters/pipeline.ts';
import type { FilterContext, FilterPhase, FilterStage, FilterVerdict } from '../../../src/filters/types.ts';

function capture() {
  const lines: Record<string, unknown>[] = [];
  const out = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l.trim()) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { log: createLogger('debug', out), lines };
}

function ctx(over: Partial<FilterContext> = {}): FilterContext {
  return {
    id: 'Q1ABC',
    client: { address: '192.0.2.7', listener: 'smtp' },
    from: 'alice@remote.test',
    recipients: ['bob@corp.example'],
    tags: {},
    ...over,
  };
}

function stage(name: string, phase: FilterPhase, check: (c: FilterContext) => FilterVerdict | Promise<FilterVerdict>, calls?: string[]): FilterStage {
  return {
    name,
    phase,
    async check(c) {
      calls?.push(name);
      return check(c);
    },
  };
}

/** The data phase one stage after the other, so a test can see which stages ran at all. */
const SEQUENTIAL: Partial<FilterPipelineOptions> = { parallel: [] };

function pipeline(stages: FilterStage[], extra: Partial<FilterPipelineOptions> = {}) {
  const { log, lines } = capture();
  return { p: new FilterPipeline({ stages, log, ...extra }), lines };
}

test('runs only the stages of the phase, in order, and accepts when all accept', async () => {
  const calls: string[] = [];
  const { p } = pipeline([
    stage('a', 'data', () => ({ action: 'accept' }), calls),
    stage('m', 'mail', () => ({ action: 'reject' }), calls),
    stage('b', 'data', () => ({ action: 'accept' }), calls),
  ]);
  const r = await p.run('data', ctx({ message: Buffer.from('x') }));
  assert.deepEqual(calls, ['a', 'b']);
  assert.equal(r.action, 'accept');
  assert.deepEqual(r.headers, []);
  assert.deepEqual(
    r.verdicts.map((v) => [v.stage, v.action]),
    [
      ['a', 'accept'],
      ['b', 'accept'],
    ],
  );
  assert.ok(r.verdicts.every((v) => typeof v.ms === 'number' && v.ms >= 0));
});

test('mark collects headers in stage order and goes on; the last subject wins; the result is accept', async () => {
  const calls: string[] = [];
  const { p } = pipeline([
    stage('spam', 'data', () => ({ action: 'mark', headers: [['X-Spam-Flag', 'YES']], subject: '[SPAM] hi', tags: { spam: true } }), calls),
    stage('dkim', 'data', () => ({ action: 'mark', headers: [['Authentication-Results', 'mx; dkim=pass']] }), calls),
    stage('other', 'data', () => ({ action: 'mark', subject: '***SPAM*** hi' }), calls),
    stage('last', 'data', () => ({ action: 'accept' }), calls),
  ]);
  const r = await p.run('data', ctx());
  assert.deepEqual(calls, ['spam', 'dkim', 'other', 'last']);
  assert.equal(r.action, 'accept');
  assert.deepEqual(r.headers, [
    ['X-Spam-Flag', 'YES'],
    ['Authentication-Results', 'mx; dkim=pass'],
  ]);
  assert.equal(r.subject, '***SPAM*** hi');
  assert.deepEqual(r.tags, { spam: true });
});

test('tags merge into ctx.tags so later stages and later phases see them', async () => {
  const seen: unknown[] = [];
  const { p } = pipeline([
    stage('first', 'rcpt', () => ({ action: 'accept', tags: { spamExempt: true } })),
    stage('second', 'rcpt', (c) => {
      seen.push({ ...c.tags });
      return { action: 'accept', tags: { score: 1 } };
    }),
    stage('data', 'data', (c) => {
      seen.push({ ...c.tags });
      return { action: 'accept' };
    }),
  ]);
  const c = ctx({ tags: { earlier: 'x' } });
  const r1 = await p.run('rcpt', c);
  assert.deepEqual(r1.tags, { spamExempt: true, score: 1 });
  await p.run('data', c);
  assert.deepEqual(seen, [
    { earlier: 'x', spamExempt: true },
    { earlier: 'x', spamExempt: true, score: 1 },
  ]);
});

test('stops at the first reject, with its reply; later stages do not run', async () => {
  const calls: string[] = [];
  const reply = { code: 554, enhanced: '5.7.1', text: 'Message refused: attachment of blocked type (executables: exe)' };
  const { p } = pipeline([
    stage('mark', 'data', () => ({ action: 'mark', headers: [['X-A', '1']] }), calls),
    stage('attachments', 'data', () => ({ action: 'reject', reply, tags: { blockedAttachment: { class: 'executables' } } }), calls),
    stage('spam', 'data', () => ({ action: 'accept' }), calls),
  ], SEQUENTIAL);
  const r = await p.run('data', ctx());
  assert.deepEqual(calls, ['mark', 'attachments']);
  assert.equal(r.action, 'reject');
  assert.deepEqual(r.reply, reply);
  assert.deepEqual(r.tags, { blockedAttachment: { class: 'executables' } });
  assert.equal(r.verdicts.length, 2);
});

test('discard and tempfail stop too', async () => {
  for (const action of ['discard', 'tempfail'] as const) {
    const calls: string[] = [];
    const { p } = pipeline([stage('s', 'data', () => ({ action }), calls), stage('after', 'data', () => ({ action: 'accept' }), calls)], SEQUENTIAL);
    const r = await p.run('data', ctx());
    assert.equal(r.action, action);
    assert.deepEqual(calls, ['s']);
  }
});

test('a reject without a reply gets 554 5.7.1; a tempfail with a 5xx reply gets a 4xx one (never a 5xx for "later")', async () => {
  const { p } = pipeline([stage('r', 'mail', () => ({ action: 'reject' }))]);
  assert.deepEqual((await p.run('mail', ctx())).reply, { code: 554, enhanced: '5.7.1', text: 'Rejected by policy' });
  const { p: p2 } = pipeline([stage('t', 'data', () => ({ action: 'tempfail', reply: { code: 554, enhanced: '5.0.0', text: 'oops' } }))]);
  const r = await p2.run('data', ctx());
  assert.equal(r.action, 'tempfail');
  assert.equal(r.reply?.code, 451);
  assert.equal(r.reply?.enhanced, '4.7.1');
});

test('a stage that throws (clamd down) is a temporary failure: 451 4.7.1 <stage> temporarily unavailable', async () => {
  const calls: string[] = [];
  const { p, lines } = pipeline([
    stage('clamav', 'data', () => {
      throw new Error('connect ECONNREFUSED 127.0.0.1:3310');
    }, calls),
    stage('spam', 'data', () => ({ action: 'accept' }), calls),
  ], SEQUENTIAL);
  const r = await p.run('data', ctx());
  assert.equal(r.action, 'tempfail');
  assert.deepEqual(r.reply, { code: 451, enhanced: '4.7.1', text: 'clamav temporarily unavailable, try again later' });
  assert.deepEqual(calls, ['clamav']);
  const line = lines.find((l) => l.stage === 'clamav');
  assert.equal(line?.level, 40); // warn
  assert.equal(line?.action, 'tempfail');
  assert.match(String(line?.err), /ECONNREFUSED/);
});

test('a stage that throws is accepted when onFailure says so: logged at warn, named in failedStages, the rest runs', async () => {
  const calls: string[] = [];
  const { p, lines } = pipeline(
    [
      stage('spamassassin', 'data', () => Promise.reject(new Error('spamd timeout')), calls),
      stage('clamav', 'data', () => {
        throw new Error('clamd down');
      }, calls),
      stage('last', 'data', () => ({ action: 'mark', headers: [['X-Last', 'yes']] }), calls),
    ],
    { onFailure: (s) => (s === 'spamassassin' ? 'accept' : 'tempfail'), ...SEQUENTIAL },
  );
  const c = ctx();
  const r = await p.run('data', c);
  // clamav's policy is tempfail: the message is not let through unscanned.
  assert.equal(r.action, 'tempfail');
  assert.deepEqual(calls, ['spamassassin', 'clamav']);
  assert.deepEqual(c.tags.failedStages, ['spamassassin']);
  const warn = lines.find((l) => l.stage === 'spamassassin');
  assert.equal(warn?.level, 40);
  assert.equal(warn?.action, 'accept');
  assert.match(String(warn?.msg), /accepted unchecked/);

  const { p: p2 } = pipeline([stage('spamassassin', 'data', () => Promise.reject(new Error('x')), calls), stage('last', 'data', () => ({ action: 'mark', headers: [['X-Last', 'yes']] }))], {
    onFailure: () => 'accept',
  });
  const r2 = await p2.run('data', ctx());
  assert.equal(r2.action, 'accept');
  assert.deepEqual(r2.headers, [['X-Last', 'yes']]);
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('data-phase stages run at the same time (clamd and spamd asked together); other phases one after the other', async () => {
  let running = 0;
  let most = 0;
  const slow = (name: string, ms: number, phase: FilterPhase = 'data') =>
    stage(name, phase, async () => {
      most = Math.max(most, ++running);
      await sleep(ms);
      running--;
      return { action: 'accept' };
    });
  const { p } = pipeline([slow('clamav', 120), slow('spamassassin', 150), slow('mail-auth', 100)]);
  const r = await p.run('data', ctx());
  assert.equal(r.action, 'accept');
  assert.equal(most, 3);
  // Other phases stay sequential (the lists read each other's tags).
  const m = pipeline([slow('a', 10, 'mail'), slow('b', 10, 'mail')]);
  most = 0;
  await m.p.run('mail', ctx());
  assert.equal(most, 1);
});

test('in parallel the first refusal in stage order wins, even when a later stage answers first', async () => {
  const early = { code: 554, enhanced: '5.7.1', text: 'spam' };
  const first = { code: 554, enhanced: '5.7.1', text: 'virus' };
  const { p, lines } = pipeline([
    stage('mark', 'data', () => ({ action: 'mark', headers: [['X-A', '1']] })),
    stage('clamav', 'data', async () => {
      await sleep(60);
      return { action: 'reject', reply: first, tags: { virus: 'Eicar' } };
    }),
    stage('spamassassin', 'data', () => ({ action: 'reject', reply: early, tags: { spam: true } })),
  ]);
  const r = await p.run('data', ctx());
  assert.equal(r.action, 'reject');
  assert.deepEqual(r.reply, first);
  assert.deepEqual(r.tags, { virus: 'Eicar' });
  assert.deepEqual(r.verdicts.map((v) => v.stage), ['mark', 'clamav']);
  assert.ok(!lines.some((l) => l.stage === 'spamassassin'), 'a verdict that was not used is not logged as one');
});

test('in parallel marks and tags are collected in stage order, whatever order the stages finish in', async () => {
  const { p } = pipeline([
    stage('a', 'data', async () => {
      await sleep(40);
      return { action: 'mark', headers: [['X-A', '1']], tags: { t: 'a' }, subject: 'from a' };
    }),
    stage('b', 'data', () => ({ action: 'mark', headers: [['X-B', '2']], tags: { t: 'b', b: true }, subject: 'from b' })),
  ]);
  const c = ctx();
  const r = await p.run('data', c);
  assert.deepEqual(r.headers, [
    ['X-A', '1'],
    ['X-B', '2'],
  ]);
  assert.equal(r.subject, 'from b');
  assert.deepEqual(c.tags, { t: 'b', b: true });
});

test('in parallel a failed stage is judged in its place: tempfail stops, accept-on-failure goes on and is named', async () => {
  const { p } = pipeline(
    [
      stage('spamassassin', 'data', () => Promise.reject(new Error('spamd timeout'))),
      stage('clamav', 'data', async () => {
        await sleep(20);
        throw new Error('clamd down');
      }),
      stage('last', 'data', () => ({ action: 'mark', headers: [['X-Last', 'yes']] })),
    ],
    { onFailure: (s) => (s === 'spamassassin' ? 'accept' : 'tempfail') },
  );
  const c = ctx();
  const r = await p.run('data', c);
  assert.equal(r.action, 'tempfail');
  assert.equal(r.reply?.text, 'clamav temporarily unavailable, try again later');
  assert.deepEqual(c.tags.failedStages, ['spamassassin']);
  assert.deepEqual(r.headers, []);
});

test('a hung stage times out and counts as failed', async () => {
  const { p } = pipeline([stage('spamassassin', 'data', () => new Promise<FilterVerdict>(() => {}))], { timeoutMs: 60 });
  const started = Date.now();
  const r = await p.run('data', ctx());
  const took = Date.now() - started;
  assert.equal(r.action, 'tempfail');
  assert.equal(r.reply?.text, 'spamassassin temporarily unavailable, try again later');
  assert.ok(took >= 50 && took < 2000, `took ${took} ms`);

  const { p: p2 } = pipeline([stage('slow', 'data', () => new Promise<FilterVerdict>((res) => setTimeout(() => res({ action: 'accept' }), 200)))], {
    timeoutMs: 10_000,
    stageTimeoutsMs: { slow: 20 },
    onFailure: () => 'accept',
  });
  const r2 = await p2.run('data', ctx());
  assert.equal(r2.action, 'accept');
  assert.deepEqual(r2.tags.failedStages, ['slow']);
});

test('a stage that rejects after its timeout does not crash the process', async () => {
  const { p } = pipeline([stage('late', 'data', () => new Promise<FilterVerdict>((_, rej) => setTimeout(() => rej(new Error('late')), 30)))], { timeoutMs: 5 });
  assert.equal((await p.run('data', ctx())).action, 'tempfail');
  await new Promise((r) => setTimeout(r, 60)); // an unhandled rejection would fail the test run here
});

test('logs one line per verdict: component filter, queue id, client, stage, action, reply, tags', async () => {
  const { p, lines } = pipeline([
    stage('allowFrom', 'mail', () => ({ action: 'accept', tags: { spamExempt: true } })),
    stage('blockFrom', 'mail', () => ({ action: 'reject', reply: { code: 554, enhanced: '5.7.1', text: 'Sender address rejected: blocked by policy' } })),
  ]);
  await p.run('mail', ctx({ id: 'S-42' }));
  assert.equal(lines.length, 2);
  assert.deepEqual(
    lines.map((l) => [l.component, l.queueId, l.client, l.stage, l.action, l.level]),
    [
      ['filter', 'S-42', '192.0.2.7', 'allowFrom', 'accept', 30],
      ['filter', 'S-42', '192.0.2.7', 'blockFrom', 'reject', 30],
    ],
  );
  assert.deepEqual(lines[0].tags, { spamExempt: true });
  assert.equal(lines[1].reply, '554 5.7.1 Sender address rejected: blocked by policy');
});

// ---- applyMarks ---------------------------------------------------------------------------------------------------

const BODY = 'Hello Bob,\r\n\r\nSubject: this line is body, not header.\r\n.\r\n';
function message(subjectLine: string | null): Buffer {
  return Buffer.from(
    [
      'Received: from client (client [192.0.2.1])\r\n\tby mail.corp.example; Mon, 1 Jan 2024 10:00:00 +0000',
      'From: Alice <alice@remote.test>',
      ...(subjectLine === null ? [] : [subjectLine]),
      'X-Spam-Flag: NO',
      'Date: Mon, 1 Jan 2024 10:00:00 +0000',
      '',
      '',
    ].join('\r\n') + BODY,
  );
}

test('applyMarks prepends header fields with CRLF, leaves the rest byte for byte', () => {
  const m = message('Subject: Quarterly figures');
  const out = applyMarks(m, [
    ['X-Spam-Flag', 'YES'],
    ['X-Spam-Score', '7.1'],
  ]);
  assert.equal(out.toString(), 'X-Spam-Flag: YES\r\nX-Spam-Score: 7.1\r\n' + m.toString());
});

test('applyMarks folds long values at spaces, encodes non-ASCII, and strips line breaks (no header injection)', async () => {
  const long = Array.from({ length: 20 }, (_, i) => `TEST_RULE_${i}=1.0`).join(' ');
  const out = applyMarks(message('Subject: x'), [
    ['X-Spam-Status', `Yes, score=7.1 tests=${long}`],
    ['X-Note', 'café déjà vu'],
    ['X-Evil', 'a\r\nBcc: victim@corp.example'],
  ]);
  const header = out.subarray(0, out.indexOf('\r\n\r\n')).toString();
  for (const line of header.split('\r\n')) assert.ok(line.length <= 78 || !line.includes(' '), `long line: ${line}`);
  assert.doesNotMatch(header, /^Bcc:/m);
  const parsed = await simpleParser(out);
  assert.equal(parsed.headers.get('x-spam-status'), `Yes, score=7.1 tests=${long}`);
  assert.equal(decodeWords(String(parsed.headers.get('x-note'))), 'café déjà vu');
  assert.equal(parsed.headers.get('x-evil'), 'a Bcc: victim@corp.example');
  assert.ok(out.subarray(out.length - BODY.length).equals(Buffer.from(BODY)));
});

test('applyMarks puts a spam prefix in front of the original Subject, keeping its bytes (encoded words, charset)', async () => {
  // ISO-8859-1 encoded word, folded: must survive untouched.
  const original = 'Subject: =?ISO-8859-1?Q?R=E9sultats_trimestriels?=\r\n =?ISO-8859-1?Q?_de_l=27ann=E9e?=';
  const m = message(original);
  const out = applyMarks(m, [['X-Spam-Flag', 'YES']], '***SPAM*** Résultats trimestriels de l\'année');
  assert.ok(out.includes(Buffer.from('Subject: ***SPAM*** =?ISO-8859-1?Q?R=E9sultats_trimestriels?=\r\n =?ISO-8859-1?Q?_de_l=27ann=E9e?=\r\n')));
  const parsed = await simpleParser(out);
  assert.equal(parsed.subject, '***SPAM*** Résultats trimestriels de l\'année');

  // A non-ASCII prefix is encoded; plain original text after it keeps its bytes.
  const out2 = applyMarks(message('Subject: Quarterly figures'), [], '[Pourriel] Quarterly figures');
  assert.equal((await simpleParser(out2)).subject, '[Pourriel] Quarterly figures');
  const out3 = applyMarks(message('Subject: Quarterly figures'), [], '«SPAM» Quarterly figures');
  assert.match(out3.toString(), /^Subject: =\?UTF-8\?Q\?[^\r\n]*\?= Quarterly figures\r$/m);
  assert.equal((await simpleParser(out3)).subject, '«SPAM» Quarterly figures');
  const out4 = applyMarks(m, [], '«SPAM» Résultats trimestriels de l\'année');
  assert.equal((await simpleParser(out4)).subject, '«SPAM» Résultats trimestriels de l\'année');
  assert.ok(out4.includes(Buffer.from('=?ISO-8859-1?Q?R=E9sultats_trimestriels?=\r\n =?ISO-8859-1?Q?_de_l=27ann=E9e?=\r\n')));
  // Only the Subject changed: everything else is the same bytes.
  assert.equal(out.toString().replace(/^X-Spam-Flag: YES\r\n/, '').replace(/^Subject: \*\*\*SPAM\*\*\* /m, 'Subject: '), m.toString());
});

test('applyMarks replaces a Subject that is not a prefixed original, and adds one when there is none', async () => {
  const out = applyMarks(message('Subject: Quarterly figures'), [], 'Something else entirely');
  assert.match(out.toString(), /^Subject: Something else entirely\r$/m);
  const header = out.subarray(0, out.indexOf('\r\n\r\n')).toString();
  assert.equal((header.match(/^Subject:/gm) ?? []).length, 1);
  const out2 = applyMarks(message(null), [['X-Spam-Flag', 'YES']], '***SPAM*** (no subject)');
  assert.ok(out2.toString().startsWith('X-Spam-Flag: YES\r\nSubject: ***SPAM*** (no subject)\r\nReceived:'));
  assert.ok(out2.toString().endsWith(BODY));
});

test('applyMarks removes fields named in `remove` (a sender cannot pre-set X-Spam-Flag)', async () => {
  const out = applyMarks(message('Subject: hi'), [['X-Spam-Flag', 'YES']], undefined, { remove: ['x-spam-flag'] });
  assert.equal((out.toString().match(/^X-Spam-Flag:/gim) ?? []).length, 1);
  assert.ok(out.toString().startsWith('X-Spam-Flag: YES\r\n'));
  assert.equal((await simpleParser(out)).headers.get('x-spam-flag'), 'YES');
});
