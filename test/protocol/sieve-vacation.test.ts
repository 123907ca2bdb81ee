/**
 * Vacation done right (issue 15 §2): the out-of-office IT sets through the admin API and the CLI answers through
 * the queue, once per sender per :days, never to lists, bulk, robots, `<>` or when the user is not a direct
 * recipient (RFC 5230 §4.5–4.6, RFC 3834 §2); and two postern users away at once answer each other exactly once.
 * Mail comes in over SMTP (25 from outside, 587 from our users) and is counted in the Maildirs and at a sink that
 * plays the outside world.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { adminRequest } from '../helpers/admin-call.ts';
import { ROOT, runCli } from '../helpers/cli.ts';
import { sendRaw } from '../helpers/raw-smtp.ts';
import type { TestServer } from '../helpers/server.ts';
import type { SmtpSink } from '../helpers/smtp-sink.ts';
import { waitFor } from '../helpers/wait.ts';
import { PASSWORD, startWithRemote, submissionClient, transport, waitForEmptyQueue } from './smtp-env.ts';

let server: TestServer;
let sink: SmtpSink;
let close: () => Promise<void>;
let config: string;

before(async () => {
  ({ server, sink, close } = await startWithRemote({
    'outside.example': { MX: [{ exchange: 'mx.outside.example', priority: 10 }] },
    'mx.outside.example': { A: ['127.0.0.1'] },
  }));
  config = join(server.dataDir, 'cli.yaml');
  writeFileSync(config, stringify({ hostname: 'mx.example.com', dataDir: server.dataDir, directory: { type: 'ldif', file: join(ROOT, 'fixtures/ad/corp.ldif') } }));
});

after(async () => {
  await close();
});

let seq = 0;
/** A message from outside; `headers` are added, `to` is the To field (the envelope recipient is separate). */
function mail(subject: string, opts: { from?: string; to?: string; headers?: Record<string, string> } = {}): string {
  const extra = Object.entries(opts.headers ?? {})
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('');
  return (
    `From: <${opts.from ?? 'sender@outside.example'}>\r\nTo: ${opts.to ?? '<john@example.com>'}\r\nSubject: ${subject}\r\n` +
    `Message-ID: <m${++seq}.${Date.now()}@outside.example>\r\n${extra}\r\nHello.\r\n`
  );
}

async function fromOutside(envelopeFrom: string, to: string, data: string): Promise<void> {
  await transport(server, 'smtp').sendMail({ envelope: { from: envelopeFrom, to: [to] }, raw: data });
}

/** Replies the sink got for `subject` (the vacation reply's Subject is "Auto: <subject>" or IT's). */
const repliesTo = (rcpt: string) => sink.messages.filter((m) => m.to.includes(rcpt) && /^Auto-Submitted: auto-replied\r?$/m.test(m.data.toString('latin1')));

async function cli(...args: string[]) {
  return runCli(args, { config });
}

describe('out-of-office set by IT', () => {
  test('PUT /api/users/{login}/out-of-office answers an outside sender once, through the queue, as RFC 3834 asks', async () => {
    const put = await adminRequest(server, 'PUT', '/api/users/john.smith/out-of-office', { body: { text: 'I am away until Monday.\nAsk anna@example.com.' } });
    assert.equal(put.status, 200, put.text);
    assert.equal(put.json.active, true);
    const got = await adminRequest(server, 'GET', '/api/users/John.Smith/out-of-office');
    assert.equal(got.status, 200);
    assert.equal(got.json.text, 'I am away until Monday.\nAsk anna@example.com.');

    const first = mail('Quarterly numbers', { from: 'carl@outside.example' });
    await fromOutside('carl@outside.example', 'john@example.com', first);
    await fromOutside('carl@outside.example', 'john@example.com', mail('Quarterly numbers again', { from: 'carl@outside.example' }));
    await server.waitForMail('john.smith', 2);
    await waitFor('the vacation reply at the sink', () => repliesTo('carl@outside.example').length >= 1, { timeoutMs: 15_000 });
    await waitForEmptyQueue(server, 15_000);
    const replies = repliesTo('carl@outside.example');
    assert.equal(replies.length, 1, 'one reply per sender per :days');
    const reply = replies[0];
    const text = reply.data.toString('utf8');
    // RFC 3834 §3.3 / RFC 5230 §5: the null return path, so no bounce or auto-reply can answer it.
    assert.equal(reply.from, '');
    assert.match(text, /^From: <john\.smith@example\.com>\r$/m, "From is the user's primary address");
    assert.match(text, /^To: <carl@outside\.example>\r$/m);
    assert.match(text, /^Subject: Auto: Quarterly numbers\r$/m, 'RFC 5230 §4.7: "Auto: " and the original subject');
    const id = /^Message-ID: (<[^>]+>)/m.exec(first)![1];
    assert.match(text, new RegExp(`^In-Reply-To: ${id.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\r$`, 'm'));
    assert.match(text, /^References: .*<m\d+\./m);
    assert.match(text, /I am away until Monday\./);
    // The user's mail is still delivered: vacation does not cancel the keep.
    assert.equal(server.inbox('john.smith').filter((m) => m.includes('Subject: Quarterly numbers')).length, 2);
  });

  test('no reply to <>, list, bulk, auto-submitted, program senders or a message where the user is not a direct recipient', async () => {
    // Each from its own sender, so that the one-per-sender window cannot be what stops a reply.
    const cases: [string, string, string][] = [
      ['', 'john@example.com', mail('bounce', { from: 'mailer-daemon@outside.example' })],
      ['list1@outside.example', 'john@example.com', mail('list id', { from: 'list1@outside.example', headers: { 'List-Id': '<news.outside.example>' } })],
      ['list2@outside.example', 'john@example.com', mail('list unsub', { from: 'list2@outside.example', headers: { 'List-Unsubscribe': '<mailto:u@outside.example>' } })],
      ['bulk@outside.example', 'john@example.com', mail('bulk', { from: 'bulk@outside.example', headers: { Precedence: 'bulk' } })],
      ['robot@outside.example', 'john@example.com', mail('robot', { from: 'robot@outside.example', headers: { 'Auto-Submitted': 'auto-generated' } })],
      ['owner-news@outside.example', 'john@example.com', mail('owner', { from: 'owner-news@outside.example' })],
      ['news-request@outside.example', 'john@example.com', mail('request', { from: 'news-request@outside.example' })],
      ['bcc1@outside.example', 'john@example.com', mail('not named', { from: 'bcc1@outside.example', to: '<someone@outside.example>' })],
    ];
    const before = server.inbox('john.smith').length;
    for (const [from, to, data] of cases) await fromOutside(from, to, data);
    await server.waitForMail('john.smith', before + cases.length, { ms: 15_000 });
    // A control in the same batch: a direct message from a new sender is answered, so the server did reply to mail.
    await fromOutside('direct@outside.example', 'john@example.com', mail('control', { from: 'direct@outside.example', to: '"John" <J.Smith@Example.com>' }));
    await waitFor('the control reply', () => repliesTo('direct@outside.example').length === 1, { timeoutMs: 15_000 });
    await waitForEmptyQueue(server, 15_000);
    for (const [from] of cases.slice(1)) assert.equal(repliesTo(from).length, 0, `no reply to ${from}`);
    assert.equal(repliesTo('mailer-daemon@outside.example').length, 0);
  });

  test('the CLI sets it with start and end dates that are respected, shows it and clears it', async () => {
    const future = new Date(Date.now() + 3 * 86_400_000).toISOString().slice(0, 10);
    let r = await cli('user', 'out-of-office', 'mario.rossi', '--start', future, '--text', 'Back soon.', '--subject', 'Away');
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /not answering now/);
    await fromOutside('early@outside.example', 'mario@example.com', mail('before start', { from: 'early@outside.example', to: '<mario@example.com>' }));
    // Delivered (and its Sieve run) before the next CLI change: the out-of-office in force is the one at delivery,
    // and on a loaded machine the queue may not have got to the message by the time the next command ends.
    await server.waitForMail('mario.rossi', 1, { ms: 15_000 });

    r = await cli('user', 'out-of-office', 'mario.rossi', '--end', '2020-01-31', '--text', 'Back soon.');
    assert.equal(r.code, 0, r.err);
    await fromOutside('late@outside.example', 'mario@example.com', mail('after end', { from: 'late@outside.example', to: '<mario@example.com>' }));
    await server.waitForMail('mario.rossi', 2, { ms: 15_000 });

    const today = new Date().toISOString().slice(0, 10);
    r = await cli('user', 'out-of-office', 'mario.rossi', '--start', today, '--end', future, '--text', 'Back soon.', '--subject', 'Away', '--days', '3');
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /answering now/);
    await fromOutside('inside@outside.example', 'mario@example.com', mail('inside window', { from: 'inside@outside.example', to: '<mario@example.com>' }));
    await server.waitForMail('mario.rossi', 3, { ms: 15_000 });
    await waitFor('the reply inside the window', () => repliesTo('inside@outside.example').length === 1, { timeoutMs: 15_000 });
    await waitForEmptyQueue(server, 15_000);
    assert.equal(repliesTo('early@outside.example').length, 0, 'not before start');
    assert.equal(repliesTo('late@outside.example').length, 0, 'not after end');
    assert.match(repliesTo('inside@outside.example')[0].data.toString('utf8'), /^Subject: Away\r$/m);

    r = await cli('user', 'out-of-office', 'mario.rossi', '--json');
    assert.equal(r.code, 0, r.err);
    assert.equal(JSON.parse(r.out).days, 3);
    r = await cli('user', 'out-of-office', 'mario.rossi', '--clear');
    assert.equal(r.code, 0, r.err);
    assert.equal((await adminRequest(server, 'GET', '/api/users/mario.rossi/out-of-office')).status, 404);
    r = await cli('user', 'out-of-office', 'mario.rossi', '--end', 'next week', '--text', 'x');
    assert.equal(r.code, 64, 'a date that is not ISO 8601 is a usage error');
    assert.match(r.err, /--end: expected an ISO 8601 date/);
  });

  test('the API refuses what is not an out-of-office and logins that are filters', async () => {
    assert.equal((await adminRequest(server, 'PUT', '/api/users/john.smith/out-of-office', { body: { subject: 'x' } })).status, 400);
    const bad = await adminRequest(server, 'PUT', '/api/users/john.smith/out-of-office', { body: { text: 'x', start: '2026-12-10', end: '2026-12-01' } });
    assert.equal(bad.status, 400);
    assert.match(bad.json.message, /end must be after start/);
    assert.equal((await adminRequest(server, 'PUT', '/api/users/nobody.here/out-of-office', { body: { text: 'x' } })).status, 400);
    assert.equal((await adminRequest(server, 'GET', `/api/users/${encodeURIComponent('a)(|(x=*')}/out-of-office`)).status, 400);
    assert.equal((await adminRequest(server, 'PUT', '/api/users/john.smith/out-of-office', { auth: null, body: { text: 'x' } })).status, 401);
  });
});

describe('vacation loop', () => {
  test('two postern users away at once answer each other exactly once', async () => {
    for (const login of ['anna.bianchi', 'laura.verdi']) {
      const r = await adminRequest(server, 'PUT', `/api/users/${login}/out-of-office`, { body: { text: `${login} is away.` } });
      assert.equal(r.status, 200, r.text);
    }
    const send = async (login: string, from: string, to: string, subject: string) => {
      const c = await submissionClient(server, { user: login, pass: PASSWORD });
      try {
        const data = `From: <${from}>\r\nTo: <${to}>\r\nSubject: ${subject}\r\nMessage-ID: <${subject.replace(/\W/g, '')}.${Date.now()}@example.com>\r\n\r\nHi.\r\n`;
        const r = await sendRaw(c, from, [to], data);
        assert.equal(r.code, 250, r.raw);
      } finally {
        c.close();
      }
    };
    await send('anna.bianchi', 'anna@example.com', 'laura.verdi@example.com', 'from anna');
    // Laura's reply reaches Anna; Anna's out-of-office must not answer an auto-reply from <>.
    await server.waitForMail('anna.bianchi', 1, { ms: 15_000 });
    await waitForEmptyQueue(server, 15_000);
    await send('laura.verdi', 'laura.verdi@example.com', 'anna@example.com', 'from laura');
    await server.waitForMail('laura.verdi', 2, { ms: 15_000 });
    // And once more each way: inside the window, no second reply.
    await send('anna.bianchi', 'anna@example.com', 'laura.verdi@example.com', 'from anna again');
    await send('laura.verdi', 'laura.verdi@example.com', 'anna@example.com', 'from laura again');
    await server.waitForMail('anna.bianchi', 3, { ms: 15_000 });
    await server.waitForMail('laura.verdi', 3, { ms: 15_000 });
    await waitForEmptyQueue(server, 15_000);

    const auto = (m: string) => /^Auto-Submitted: auto-replied\r$/m.test(m);
    const anna = server.inbox('anna.bianchi');
    const laura = server.inbox('laura.verdi');
    assert.equal(anna.length, 3, 'anna: laura\'s two messages and one auto-reply');
    assert.equal(laura.length, 3, 'laura: anna\'s two messages and one auto-reply');
    assert.equal(anna.filter(auto).length, 1, 'exactly one auto-reply from laura');
    assert.equal(laura.filter(auto).length, 1, 'exactly one auto-reply from anna');
    assert.match(anna.find(auto)!, /^From: <laura\.verdi@example\.com>\r$/m);
    assert.match(laura.find(auto)!, /^From: <anna@example\.com>\r$/m);
    assert.match(anna.find(auto)!, /^Return-Path: <>\r$/m, 'the reply came with the null return path');
  });
});
