/**
 * Client autoconfiguration on the plain-HTTP listener (issue 6 §4): Thunderbird autoconfig and Outlook
 * Autodiscover (POX), checked against the ports the running listeners are bound to.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer, type TestServer } from '../helpers/server.ts';

let server: TestServer;
let base: string;

before(async () => {
  server = await startTestServer();
  base = `http://127.0.0.1:${server.ports.http}`;
});
after(async () => {
  await server?.close();
});

/** The <tag type="…"> blocks of a clientConfig, as {type, hostname, port, socketType, username}. */
function servers(xml: string, tag: 'incomingServer' | 'outgoingServer') {
  return [...xml.matchAll(new RegExp(`<${tag} type="([^"]+)">([\\s\\S]*?)</${tag}>`, 'g'))].map((m) => {
    const field = (name: string) => new RegExp(`<${name}>([^<]*)</${name}>`).exec(m[2])?.[1];
    return { type: m[1], hostname: field('hostname'), port: Number(field('port')), socketType: field('socketType'), username: field('username') };
  });
}

const autodiscoverRequest = (email: string) =>
  `<?xml version="1.0" encoding="utf-8"?><Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"><Request><EMailAddress>${email}</EMailAddress><AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema></Request></Autodiscover>`;

function protocols(xml: string) {
  return [...xml.matchAll(/<Protocol>([\s\S]*?)<\/Protocol>/g)].map((m) => {
    const f = (n: string) => new RegExp(`<${n}>([^<]*)</${n}>`).exec(m[1])?.[1];
    return { type: f('Type'), server: f('Server'), port: Number(f('Port')), ssl: f('SSL'), encryption: f('Encryption'), login: f('LoginName') };
  });
}

describe('Thunderbird autoconfig', () => {
  for (const path of ['/.well-known/autoconfig/mail/config-v1.1.xml', '/mail/config-v1.1.xml']) {
    test(`${path}: the running IMAP, POP3 and submission listeners`, async () => {
      const res = await fetch(`${base}${path}?emailaddress=laura.verdi@example.com`);
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type') ?? '', /xml/);
      const xml = await res.text();
      assert.match(xml, /^<\?xml version="1\.0" encoding="UTF-8"\?>\n<clientConfig version="1\.1">/);
      assert.match(xml, /<emailProvider id="example\.com">/);
      assert.match(xml, /<domain>example\.com<\/domain>/);
      assert.match(xml, /<domain>example\.org<\/domain>/);
      const incoming = servers(xml, 'incomingServer');
      const outgoing = servers(xml, 'outgoingServer');
      assert.deepEqual(incoming[0], { type: 'imap', hostname: 'mx.example.com', port: server.ports.imap, socketType: 'STARTTLS', username: 'laura.verdi' });
      assert.ok(incoming.some((s) => s.type === 'imap' && s.port === server.ports.imaps && s.socketType === 'SSL'));
      assert.ok(incoming.some((s) => s.type === 'pop3' && s.port === server.ports.pop3 && s.socketType === 'STARTTLS'));
      assert.ok(incoming.some((s) => s.type === 'pop3' && s.port === server.ports.pop3s && s.socketType === 'SSL'));
      assert.deepEqual(outgoing[0], { type: 'smtp', hostname: 'mx.example.com', port: server.ports.submission, socketType: 'STARTTLS', username: 'laura.verdi' });
      assert.ok(outgoing.some((s) => s.port === server.ports.smtps && s.socketType === 'SSL'));
      assert.ok(!outgoing.some((s) => s.port === server.ports.smtp), 'port 25 is not for clients');
    });
  }

  test('an unknown address gets the address placeholder as user name', async () => {
    const xml = await (await fetch(`${base}/mail/config-v1.1.xml?emailaddress=nobody@example.com`)).text();
    assert.equal(servers(xml, 'incomingServer')[0].username, '%EMAILADDRESS%');
  });

  test('mailbox.pop3 off: POP3 is no longer offered, without a restart', async (t) => {
    server.core.settings.set('mailbox.pop3', false);
    t.after(() => server.core.settings.unset('mailbox.pop3'));
    const xml = await (await fetch(`${base}/mail/config-v1.1.xml`)).text();
    assert.ok(!servers(xml, 'incomingServer').some((s) => s.type === 'pop3'));
  });
});

describe('Outlook Autodiscover (POX)', () => {
  test('POST with the address: IMAP, POP3 and SMTP from the running listeners', async () => {
    for (const path of ['/autodiscover/autodiscover.xml', '/Autodiscover/Autodiscover.xml']) {
      const res = await fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'text/xml' }, body: autodiscoverRequest('laura.verdi@example.com') });
      assert.equal(res.status, 200, path);
      const xml = await res.text();
      assert.match(xml, /<Autodiscover xmlns="http:\/\/schemas\.microsoft\.com\/exchange\/autodiscover\/responseschema\/2006">/);
      assert.match(xml, /<AccountType>email<\/AccountType>\s*<Action>settings<\/Action>/);
      const p = protocols(xml);
      assert.deepEqual(p.find((x) => x.type === 'IMAP'), { type: 'IMAP', server: 'mx.example.com', port: server.ports.imaps, ssl: 'on', encryption: undefined, login: 'laura.verdi' });
      assert.equal(p.find((x) => x.type === 'POP3')?.port, server.ports.pop3s);
      assert.deepEqual(p.find((x) => x.type === 'SMTP'), { type: 'SMTP', server: 'mx.example.com', port: server.ports.smtps, ssl: 'on', encryption: undefined, login: 'laura.verdi' });
    }
  });

  test('GET answers too', async () => {
    const res = await fetch(`${base}/autodiscover/autodiscover.xml?emailaddress=laura.verdi@example.com`);
    assert.equal(res.status, 200);
    assert.equal(protocols(await res.text()).find((x) => x.type === 'SMTP')?.port, server.ports.smtps);
  });

  test('the admin API is not on the http listener', async () => {
    assert.equal((await fetch(`${base}/api/settings`)).status, 404);
  });
});

describe('listeners turned off', () => {
  test('only STARTTLS listeners: Autodiscover asks for STARTTLS (Encryption TLS) on their ports', async () => {
    const s = await startTestServer({ listeners: { imaps: false, pop3s: false, smtps: false, smtp: false, submission: { port: 0, host: '127.0.0.1' }, imap: { port: 0, host: '127.0.0.1' }, pop3: false } });
    try {
      const res = await fetch(`http://127.0.0.1:${s.ports.http}/autodiscover/autodiscover.xml`, { method: 'POST', body: autodiscoverRequest('laura.verdi@example.com') });
      const p = protocols(await res.text());
      assert.deepEqual(p.map((x) => [x.type, x.port, x.encryption]), [
        ['IMAP', s.ports.imap, 'TLS'],
        ['SMTP', s.ports.submission, 'TLS'],
      ]);
      const xml = await (await fetch(`http://127.0.0.1:${s.ports.http}/mail/config-v1.1.xml`)).text();
      assert.deepEqual(servers(xml, 'incomingServer').map((x) => x.port), [s.ports.imap]);
    } finally {
      await s.close();
    }
  });
});
