/**
 * Message trace end to end (issue 13 item 6, "done means"): a whole server on the Samba AD DC (CORP.EXAMPLE) with
 * the real clamd and spamd the driver starts. A user authenticated by AD sends one message that spamd marks as
 * spam, that is relayed to one remote recipient and bounced by another — its trace holds the path received →
 * filter verdicts (clamav accept, spamassassin mark with the score) → queued → SMTP attempt → relayed / failed →
 * bounced (the DSN's queue id) → completed, and the DSN's own path ends in the sender's AD mailbox. A virus from
 * outside is refused by clamd: received → clamav reject with the signature → rejected.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import nodemailer from 'nodemailer';
import type { TracePath } from '../../src/trace/types.ts';
import { EICAR } from '../harness/clamd.ts';
import { adminRequest } from '../helpers/admin-call.ts';
import { startAdMailEnv, skipWithoutAdAndFilters, type AdMailEnv } from '../helpers/ad-mail-env.ts';
import type { TestServer } from '../helpers/server.ts';
import type { SmtpSink } from '../helpers/smtp-sink.ts';
import { waitFor } from '../helpers/wait.ts';

const skip = skipWithoutAdAndFilters;
const PASSWORD = 'Corp!Passw0rd';

describe('message trace on AD with real clamd and spamd', { skip }, () => {
  let mailEnv: AdMailEnv;
  let server: TestServer;
  let sink: SmtpSink;

  before(async () => {
    mailEnv = await startAdMailEnv('remote.example', { clamdMs: 10_000, spamdMs: 30_000 });
    ({ server, sink } = mailEnv);
  });

  after(async () => {
    await mailEnv?.close();
  });

  async function trace(query: string): Promise<TracePath[]> {
    const r = await adminRequest(server, 'GET', `/api/trace?${query}`);
    assert.equal(r.status, 200, r.text);
    return r.json.messages as TracePath[];
  }

  const has = (p: TracePath | undefined, type: string, rcpt?: string) => p?.events.some((e) => e.type === type && (rcpt === undefined || e.rcpt === rcpt));
  const event = (p: TracePath, type: string, pred: (e: TracePath['events'][number]) => boolean = () => true) => {
    const e = p.events.find((x) => x.type === type && pred(x));
    assert.ok(e, `${type} in ${JSON.stringify(p.events.map((x) => x.type))}`);
    return e;
  };

  it('a message marked as spam, relayed to one recipient and bounced by another: its whole path, and the DSN\'s', async () => {
    // Every message scores above this threshold: spamd's verdict is "mark" (the deny threshold stays far above).
    server.core.settings.set('filter.spam.threshold', -100);
    const t = nodemailer.createTransport({
      host: '127.0.0.1',
      port: server.ports.submission,
      requireTLS: true,
      tls: { rejectUnauthorized: false },
      name: 'client.example.net',
      auth: { user: 'john.smith', pass: PASSWORD },
    });
    const info = await t.sendMail({
      from: 'john@example.com',
      to: ['partner@remote.example', 'perm.gone@remote.example'],
      subject: 'quarterly figures',
      text: 'The figures are attached as promised.',
      messageId: '<trace-ad.1@example.com>',
    });
    t.close();
    const id = /queued as ([0-9A-Z]+)/.exec(info.response)![1];

    const [p] = await waitFor('the completed path', async () => {
      const found = await trace(`messageId=trace-ad.1@example.com`);
      return has(found[0], 'completed') ? found : undefined;
    }, { timeoutMs: 60_000 });
    assert.equal(p.queueId, id);
    assert.equal(p.from, 'john@example.com');
    assert.deepEqual(p.recipients, ['partner@remote.example', 'perm.gone@remote.example']);

    const received = event(p, 'received').detail;
    assert.equal(received.listener, 'submission');
    assert.equal(received.user, 'john.smith', 'the AD login that authenticated');
    assert.equal(event(p, 'filter', (e) => e.detail.stage === 'clamav').detail.action, 'accept');
    const spam = event(p, 'filter', (e) => e.detail.stage === 'spamassassin').detail;
    assert.equal(spam.action, 'mark');
    assert.equal((spam.tags as { spam?: boolean }).spam, true);
    assert.equal(typeof (spam.tags as { spamScore?: number }).spamScore, 'number');

    const attempt = event(p, 'attempt').detail;
    assert.match(String(attempt.host), /^mx\.remote\.example\[127\.0\.0\.1\]:/);
    const relayed = event(p, 'relayed', (e) => e.rcpt === 'partner@remote.example').detail;
    assert.equal(relayed.host, 'mx.remote.example');
    assert.match(String(relayed.reply), /^250/);
    assert.match(String(event(p, 'failed', (e) => e.rcpt === 'perm.gone@remote.example').detail.reply), /^550 5\.1\.1/);
    const bounced = event(p, 'bounced').detail;
    assert.deepEqual(bounced.failed, ['perm.gone@remote.example']);

    // The order of the path: what happened first comes first.
    const order: string[] = p.events.map((e) => e.type);
    const at = (type: string) => order.indexOf(type);
    assert.ok(at('received') === 0 && at('filter') < at('queued') && at('queued') < at('attempt'), String(order));
    assert.ok(at('attempt') < at('relayed') && at('relayed') < at('bounced') && at('bounced') < at('completed'), String(order));
    assert.ok(sink.messages.some((m) => m.to.includes('partner@remote.example')));

    // The DSN: queued locally, delivered to john.smith's mailbox (found in AD), found by the null sender too.
    const dsn = await waitFor('the DSN delivered', async () => {
      const [d] = await trace(`id=${String(bounced.dsnId)}`);
      return has(d, 'delivered') ? d : undefined;
    }, { timeoutMs: 60_000 });
    assert.equal(dsn.from, '');
    assert.equal(event(dsn, 'delivered').detail.mailbox, 'john.smith');
    assert.ok((await trace('from=&since=1h')).some((x) => x.queueId === dsn.queueId));
    assert.ok((await trace('to=perm.gone@remote.example')).some((x) => x.queueId === id));
  });

  it('a virus from outside is refused by clamd: received, the clamav verdict naming the signature, rejected', async () => {
    const t = nodemailer.createTransport({ host: '127.0.0.1', port: server.ports.smtp, secure: false, ignoreTLS: true, name: 'mta.outside.example' });
    await assert.rejects(
      t.sendMail({ from: 'infected@outside.example', to: 'anna@example.com', subject: 'invoice', text: `${EICAR}\n`, messageId: '<trace-ad.virus@outside.example>' }),
      (err: Error & { responseCode?: number }) => err.responseCode === 554,
    );
    t.close();
    const [p] = await waitFor('the refused message in the trace', async () => {
      const found = await trace('from=infected@outside.example');
      return has(found[0], 'rejected') ? found : undefined;
    }, { timeoutMs: 30_000 });
    assert.equal(p.messageId, 'trace-ad.virus@outside.example');
    assert.equal(event(p, 'received').detail.listener, 'smtp');
    const verdict = event(p, 'filter', (e) => e.detail.stage === 'clamav').detail;
    assert.equal(verdict.action, 'reject');
    assert.match(JSON.stringify(verdict.tags), /Eicar/i);
    assert.match(String(event(p, 'rejected').detail.reply), /^554 5\.7\.1/);
    assert.ok(!p.events.some((e) => e.type === 'queued'));
  });
});
