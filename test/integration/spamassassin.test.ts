/**
 * The spam stage and our SPAMC/1.5 client against a real spamd (DESIGN.md §5): the shared one test/run.ts starts
 * for scoring, and a private one for Bayes learning (so learned tokens do not change the scores other files see)
 * and for "spamd went away".
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { SpamAssassinConfig } from '../../src/config/schema.js';
import { applyMarks, FilterPipeline } from '../../src/filters/pipeline.js';
import { Spamc, SpamcError } from '../../src/filters/spamc.js';
import { prefixedSubject, readSubject, SPAM_HEADER_FIELDS, SpamLearner, spamassassinStage } from '../../src/filters/spamassassin.js';
import type { FilterContext } from '../../src/filters/types.js';
import { silentLogger } from '../../src/lib/logger.js';
import { openSettings, type Settings } from '../../src/settings/index.js';
import { serviceStatus } from '../harness/control.js';
import { GTUBE, startSpamd, type Spamd } from '../harness/spamd.js';

const env = process.env;
const skip = env.POSTERN_TEST_SPAMD_HOST ? false : 'needs spamd: run through node --import tsx test/run.ts';

// ---- messages ----------------------------------------------------------------------------------------------------

let seq = 0;
function message(opts: { subject?: string | null; body: string; from?: string; extraHeaders?: string }): Buffer {
  const subject = opts.subject === undefined ? 'Lunch on Thursday' : opts.subject;
  return Buffer.from(
    `From: ${opts.from ?? 'Alice Martin <alice@example.com>'}\r\nTo: Bob Stone <bob@corp.example>\r\n` +
      (subject === null ? '' : `Subject: ${subject}\r\n`) +
      `Date: ${new Date().toUTCString().replace('GMT', '+0000')}\r\n` +
      `Message-ID: <${Date.now()}.${++seq}.postern-test@mail.example.com>\r\n${opts.extraHeaders ?? ''}\r\n${opts.body}\r\n`,
  );
}
const ham = (subject?: string | null) =>
  message({ subject, body: 'Hi Bob,\r\n\r\nShall we meet for lunch on Thursday at noon, at the usual place?\r\n\r\nAlice' });
const gtube = () => message({ subject: 'Test', body: `This is the GTUBE:\r\n\r\n${GTUBE}\r\n` });

function ctx(msg: Buffer, tags: Record<string, unknown> = {}, recipients = ['bob@corp.example']): FilterContext {
  return { id: 'SP1', client: { address: '192.0.2.20', listener: 'smtp' }, from: 'alice@example.com', recipients, message: msg, tags };
}

/** A TCP server standing in for a broken spamd: `answer` decides what (if anything) it replies to a request. */
async function fakeSpamd(answer: ((sock: Socket) => void) | null): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer({ allowHalfOpen: true }, (sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => {});
    sock.on('data', () => {});
    if (answer) sock.on('end', () => answer(sock));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  assert.ok(addr && typeof addr === 'object');
  return {
    port: addr.port,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

const DEAD: SpamAssassinConfig = { host: '127.0.0.1', port: 1, timeoutMs: 1000 };

// ---- tests -------------------------------------------------------------------------------------------------------

describe('SpamAssassin stage (spamd, SPAMC/1.5)', { skip }, () => {
  let dataDir: string;
  let settings: Settings;
  const config = (): SpamAssassinConfig => ({ host: env.POSTERN_TEST_SPAMD_HOST!, port: Number(env.POSTERN_TEST_SPAMD_PORT), timeoutMs: 20_000 });
  const stage = (cfg: SpamAssassinConfig = config()) => spamassassinStage({ config: cfg, settings, log: silentLogger });

  before(() => {
    dataDir = mkdtempSync(join(tmpdir(), 'postern-spam-test-'));
    settings = openSettings(dataDir);
  });
  after(() => {
    settings.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  describe('the SPAMC client', () => {
    it('PING answers', async () => {
      await new Spamc(config()).ping();
    });

    it('GTUBE scores about 1000 with the GTUBE rule; a plain message scores low', async () => {
      const spamc = new Spamc(config());
      const spam = await spamc.check(gtube());
      assert.equal(spam.isSpam, true);
      assert.ok(spam.score >= 1000 && spam.score < 1100, String(spam.score));
      assert.equal(spam.threshold, 5);
      assert.ok(spam.symbols.includes('GTUBE'), spam.symbols.join(','));
      const clean = await spamc.check(ham(), { user: 'bob' });
      assert.equal(clean.isSpam, false);
      assert.ok(clean.score < 5, String(clean.score));
      assert.ok(!clean.symbols.includes('GTUBE'));
    });

    it('refuses a user name that would break the request', async () => {
      await assert.rejects(new Spamc(config()).check(ham(), { user: 'bob\r\nX: y' }), SpamcError);
    });
  });

  describe('thresholds are ours (filter.spam.*), not spamd\'s', () => {
    it('GTUBE ≥ denyThreshold (default 15) → 554 5.7.1 with the score', async () => {
      const v = await stage().check(ctx(gtube()));
      assert.equal(v.action, 'reject');
      assert.equal(v.reply?.code, 554);
      assert.equal(v.reply?.enhanced, '5.7.1');
      assert.match(v.reply!.text, /^Message refused as spam \(score 10\d\d\.\d\)$/);
      assert.equal(v.tags?.spam, true);
      assert.ok(Number(v.tags?.spamScore) >= 1000);
    });

    it('a clean message → marked X-Spam-Status: No with X-Spam-Score, no flag, subject untouched', async () => {
      const v = await stage().check(ctx(ham()));
      assert.equal(v.action, 'mark');
      const h = new Map(v.headers);
      assert.equal(h.has('X-Spam-Flag'), false);
      assert.match(h.get('X-Spam-Score')!, /^-?\d+\.\d$/);
      assert.match(h.get('X-Spam-Status')!, /^No, score=-?\d+\.\d required=5\.0 tests=\S+$/);
      assert.equal(v.subject, undefined);
      assert.equal(v.tags?.spam, false);
      assert.equal(typeof v.tags?.spamScore, 'number');
    });

    it('score between threshold and denyThreshold → X-Spam-Flag: YES, status, subject prefix', async () => {
      settings.setMany({ 'filter.spam.threshold': -100, 'filter.spam.denyThreshold': 100, 'filter.spam.subjectPrefix': '***SPAM*** ' });
      try {
        const msg = ham();
        const v = await stage().check(ctx(msg));
        assert.equal(v.action, 'mark');
        const h = new Map(v.headers);
        assert.equal(h.get('X-Spam-Flag'), 'YES');
        assert.match(h.get('X-Spam-Score')!, /^-?\d+\.\d$/);
        assert.match(h.get('X-Spam-Status')!, /^Yes, score=-?\d+\.\d required=-100\.0 tests=[A-Z0-9_,]+$/);
        assert.equal(v.subject, '***SPAM*** Lunch on Thursday');
        assert.equal(v.tags?.spam, true);

        // What the SMTP data hook does with it (src/filters/pipeline.ts applyMarks): the prefix lands in front of
        // the original Subject, our fields on top, a sender's own X-Spam-* fields removed.
        const forged = message({ subject: 'Lunch on Thursday', body: 'hi', extraHeaders: 'X-Spam-Flag: NO\r\nX-Spam-Status: No, forged\r\n' });
        const marked = applyMarks(forged, v.headers!, v.subject, { remove: SPAM_HEADER_FIELDS }).toString();
        assert.match(marked, /^X-Spam-Flag: YES\r\nX-Spam-Score: /);
        assert.match(marked, /\r\nSubject: \*\*\*SPAM\*\*\* Lunch on Thursday\r\n/);
        assert.doesNotMatch(marked, /forged|X-Spam-Flag: NO/);

        // An RFC 2047 Subject: the prefix goes in front of the decoded text.
        const encoded = message({ subject: '=?UTF-8?Q?D=C3=A9jeuner_jeudi?=', body: 'Salut' });
        assert.equal(readSubject(encoded), 'Déjeuner jeudi');
        assert.equal((await stage().check(ctx(encoded))).subject, '***SPAM*** Déjeuner jeudi');
        // No Subject at all: the prefix alone.
        assert.equal((await stage().check(ctx(ham(null)))).subject, '***SPAM***');
      } finally {
        settings.unset('filter.spam.subjectPrefix');
        settings.unset('filter.spam.threshold');
        settings.unset('filter.spam.denyThreshold');
      }
    });
  });

  describe('skipped without asking spamd', () => {
    it('filter.spam off', async () => {
      settings.set('filter.spam', false);
      try {
        assert.deepEqual(await stage(DEAD).check(ctx(gtube())), { action: 'accept' });
      } finally {
        settings.unset('filter.spam');
      }
    });

    it('a message over filter.spam.maxScanSizeKB', async () => {
      settings.set('filter.spam.maxScanSizeKB', 1);
      try {
        const big = message({ subject: 'Big', body: `${GTUBE}\r\n${'padding line of text\r\n'.repeat(60)}` });
        assert.ok(big.length > 1024);
        assert.deepEqual(await stage(DEAD).check(ctx(big)), { action: 'accept' });
        // Just under the limit it is scored (and GTUBE refused).
        settings.set('filter.spam.maxScanSizeKB', Math.ceil(big.length / 1024));
        assert.equal((await stage().check(ctx(big))).action, 'reject');
      } finally {
        settings.unset('filter.spam.maxScanSizeKB');
      }
    });

    it('an allow-listed sender (tags.spamExempt)', async () => {
      assert.deepEqual(await stage(DEAD).check(ctx(gtube(), { spamExempt: true })), { action: 'accept' });
    });

    it('every recipient allow-listed (tags.spamExemptRecipients); one recipient not listed → scored', async () => {
      const tags = { spamExemptRecipients: ['bob@corp.example', 'carol@corp.example'] };
      assert.deepEqual(await stage(DEAD).check(ctx(gtube(), tags, ['Bob@corp.example', 'carol@corp.example'])), { action: 'accept' });
      const v = await stage().check(ctx(gtube(), tags, ['bob@corp.example', 'dave@corp.example']));
      assert.equal(v.action, 'reject');
    });

    it('the lists stage tags make it through the pipeline', async () => {
      const pipeline = new FilterPipeline({ stages: [stage(DEAD)], log: silentLogger });
      const r = await pipeline.run('data', ctx(gtube(), { spamExempt: true }));
      assert.equal(r.action, 'accept');
    });
  });

  describe('spamd failures throw (the pipeline applies filter.spam.onFailure)', () => {
    it('connection refused → throws at once; the pipeline answers 451 4.7.1', async () => {
      const t0 = Date.now();
      await assert.rejects(stage({ ...DEAD, timeoutMs: 10_000 }).check(ctx(ham())), SpamcError);
      assert.ok(Date.now() - t0 < 2000);
      const pipeline = new FilterPipeline({ stages: [stage(DEAD)], log: silentLogger, onFailure: () => settings.get('filter.spam.onFailure') });
      const r = await pipeline.run('data', ctx(ham()));
      assert.deepEqual([r.action, r.reply?.code, r.reply?.enhanced], ['tempfail', 451, '4.7.1']);
    });

    it('spamd accepting but never answering → throws at timeoutMs', async () => {
      const fake = await fakeSpamd(null);
      try {
        const t0 = Date.now();
        await assert.rejects(new Spamc({ host: '127.0.0.1', port: fake.port, timeoutMs: 400 }).check(ham()), /no answer to SYMBOLS within 400 ms/);
        const ms = Date.now() - t0;
        assert.ok(ms >= 390 && ms < 3000, `${ms} ms`);
      } finally {
        await fake.close();
      }
    });

    it('an error code, a reply without Spam header, garbage, or no reply → throws', async () => {
      const replies = [
        'SPAMD/1.0 76 Bad header line: (EOF)\r\n',
        'SPAMD/1.1 0 EX_OK\r\nContent-length: 0\r\n\r\n',
        'HTTP/1.1 400 Bad Request\r\n\r\n',
        'SPAMD/1.1 0 EX_OK\r\nSpam: maybe\r\n\r\n',
        '',
      ];
      for (const reply of replies) {
        const fake = await fakeSpamd((sock) => sock.end(reply));
        try {
          await assert.rejects(new Spamc({ host: '127.0.0.1', port: fake.port, timeoutMs: 2000 }).check(ham()), SpamcError, JSON.stringify(reply));
        } finally {
          await fake.close();
        }
      }
    });

    it('the shared spamd can be controlled through POSTERN_TEST_DC_CONTROL', async () => {
      assert.deepEqual(await serviceStatus('spamd'), { running: true });
    });
  });

  describe('a spamd of its own: Bayes learning, and stopped mid-run', () => {
    let own: Spamd;
    let spamc: Spamc;
    before(async () => {
      own = await startSpamd({ bayesMinNum: 1 });
      spamc = new Spamc({ host: own.host, port: own.port, timeoutMs: 20_000 });
    });
    after(() => own?.destroy());

    const spammy = (n: number) =>
      message({
        subject: `Cheap zorblax pills ${n}`,
        from: 'Pharma Deals <deals@pills.example>',
        body: `Buy zorblax quorvane pills now, zorblax discount ${n}, quorvane shipping overnight.\r\nOrder zorblax today.`,
      });
    const hammy = (n: number) =>
      message({ subject: `Minutes of the budget meeting ${n}`, body: `Attached are the minutes of the budget meeting ${n}; the forecast review is next week.` });

    it('TELL learns a message (DidSet), a second time reports nothing new, the other class relearns it', async () => {
      const msg = spammy(1);
      assert.equal(await spamc.learn(msg, 'spam'), true);
      assert.equal(await spamc.learn(msg, 'spam'), false);
      assert.equal(await spamc.learn(msg, 'ham'), true);
      assert.equal(await spamc.learn(msg, 'spam'), true);
      assert.equal(await spamc.forget(msg), true);
      assert.equal(await spamc.forget(msg), false);
    });

    it('what is learned shows in the Bayes score of similar messages', async () => {
      const learner = new SpamLearner({ config: { host: own.host, port: own.port, timeoutMs: 20_000 }, log: silentLogger, settings });
      for (let i = 2; i < 5; i++) {
        assert.equal(await learner.learn(spammy(i), 'spam', { by: 'bob' }), true);
        assert.equal(await learner.learn(hammy(i), 'ham', { by: 'bob' }), true);
      }
      const spamScore = await spamc.check(spammy(9));
      const hamScore = await spamc.check(hammy(9));
      const bayes = (syms: string[]) => syms.find((s) => s.startsWith('BAYES_'));
      assert.match(bayes(spamScore.symbols) ?? 'none', /^BAYES_(9\d|8\d)/, spamScore.symbols.join(','));
      assert.match(bayes(hamScore.symbols) ?? 'none', /^BAYES_(00|05|20)/, hamScore.symbols.join(','));
      assert.ok(spamScore.score > hamScore.score);
    });

    it('SpamLearner does not learn a message over filter.spam.maxScanSizeKB', async () => {
      settings.set('filter.spam.maxScanSizeKB', 1);
      try {
        const learner = new SpamLearner({ config: { host: own.host, port: own.port, timeoutMs: 20_000 }, log: silentLogger, settings });
        const big = message({ subject: 'big', body: 'zorblax '.repeat(300) });
        assert.equal(await learner.learn(big, 'spam'), false);
      } finally {
        settings.unset('filter.spam.maxScanSizeKB');
      }
    });

    it('works, throws while spamd is stopped (451, or accept when onFailure says so), works again after start', async () => {
      const cfg: SpamAssassinConfig = { host: own.host, port: own.port, timeoutMs: 20_000 };
      const st = stage(cfg);
      const pipeline = new FilterPipeline({ stages: [st], log: silentLogger, onFailure: () => settings.get('filter.spam.onFailure') });
      assert.equal((await st.check(ctx(gtube()))).action, 'reject');

      await own.stop();
      assert.equal(own.running, false);
      await assert.rejects(st.check(ctx(gtube())), SpamcError);
      await assert.rejects(spamc.ping(), SpamcError);
      await assert.rejects(new SpamLearner({ config: cfg, log: silentLogger }).learn(spammy(10), 'spam'), SpamcError);
      let r = await pipeline.run('data', ctx(gtube()));
      assert.deepEqual([r.action, r.reply?.code, r.reply?.enhanced], ['tempfail', 451, '4.7.1']);
      settings.set('filter.spam.onFailure', 'accept');
      try {
        const c = ctx(gtube());
        r = await pipeline.run('data', c);
        assert.equal(r.action, 'accept');
        assert.deepEqual(c.tags.failedStages, ['spamassassin']);
      } finally {
        settings.unset('filter.spam.onFailure');
      }

      await own.start();
      await spamc.ping();
      assert.equal((await st.check(ctx(gtube()))).action, 'reject');
      assert.equal((await st.check(ctx(ham()))).action, 'mark');
    });
  });

  it('prefixedSubject: as given, once', () => {
    assert.equal(prefixedSubject('Hello', '[SPAM] '), '[SPAM] Hello');
    assert.equal(prefixedSubject('Hello', '[SPAM]'), '[SPAM]Hello');
    assert.equal(prefixedSubject('[SPAM] Hello', '[SPAM] '), null);
    assert.equal(prefixedSubject('Hello', ''), null);
    assert.equal(prefixedSubject(null, '***SPAM*** '), '***SPAM***');
  });
});
