/**
 * Client autoconfiguration (issue 6 §4, issue 12 item 10): Thunderbird autoconfig and Outlook Autodiscover (POX),
 * checked against the ports the running listeners are bound to. Nothing tells who exists: the answer is the same
 * for every address, with the address itself (%EMAILADDRESS%) as the login; Autodiscover answers over HTTPS, and
 * the plain-HTTP listener only redirects there. The address logins really work on IMAP, POP3 and SMTP.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:https';
import { ADDRESS_LOGINS, loginEverywhere } from '../helpers/logins.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';

const PASSWORD = 'Corp!Passw0rd';
let server: TestServer;
let base: string;

before(async () => {
  server = await startTestServer();
  base = `http://127.0.0.1:${server.ports.http}`;
});
after(async () => {
  await server?.close();
});

/** A request to the https listener, trusting the server's certificate (it names mx.example.com; we dial 127.0.0.1). */
function secure(method: string, path: string, body?: string): Promise<{ status: number; text: string; cert: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port: server.ports.https, method, path, ca: server.tls.cert, checkServerIdentity: () => undefined, headers: body ? { 'content-type': 'text/xml' } : {} },
      (res) => {
        const chunks: Buffer[] = [];
        const cert = (res.socket as import('node:tls').TLSSocket).getPeerCertificate().raw;
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8'), cert }));
      },
    );
    req.on('error', reject);
    if (body) req.write(body);
    req.end();
  });
}

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
    test(`${path}: the running IMAP, POP3 and submission listeners, the address as user name`, async () => {
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
      assert.deepEqual(incoming[0], { type: 'imap', hostname: 'mx.example.com', port: server.ports.imap, socketType: 'STARTTLS', username: '%EMAILADDRESS%' });
      assert.ok(incoming.some((s) => s.type === 'imap' && s.port === server.ports.imaps && s.socketType === 'SSL'));
      assert.ok(incoming.some((s) => s.type === 'pop3' && s.port === server.ports.pop3 && s.socketType === 'STARTTLS'));
      assert.ok(incoming.some((s) => s.type === 'pop3' && s.port === server.ports.pop3s && s.socketType === 'SSL'));
      assert.deepEqual(outgoing[0], { type: 'smtp', hostname: 'mx.example.com', port: server.ports.submission, socketType: 'STARTTLS', username: '%EMAILADDRESS%' });
      assert.ok(outgoing.some((s) => s.port === server.ports.smtps && s.socketType === 'SSL'));
      assert.ok(!outgoing.some((s) => s.port === server.ports.smtp), 'port 25 is not for clients');
      assert.doesNotMatch(xml, /laura/i, 'no login name disclosed');
    });
  }

  test('answers byte for byte the same for a user, a disabled user, an unknown address and no address', async () => {
    const get = async (q: string) => (await fetch(`${base}/mail/config-v1.1.xml${q}`)).text();
    const known = await get('?emailaddress=laura.verdi@example.com');
    for (const q of ['?emailaddress=old@example.com', '?emailaddress=nobody@example.com', '?emailaddress=carla@example.com', '']) {
      assert.equal(await get(q), known, q);
    }
  });

  test('is served over HTTPS too, with the server certificate', async () => {
    const r = await secure('GET', '/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=laura.verdi@example.com');
    assert.equal(r.status, 200);
    assert.equal(servers(r.text, 'incomingServer')[0].username, '%EMAILADDRESS%');
    assert.ok(r.cert.length > 0);
  });

  test('mailbox.pop3 off: POP3 is no longer offered, without a restart', async (t) => {
    server.core.settings.set('mailbox.pop3', false);
    t.after(() => server.core.settings.unset('mailbox.pop3'));
    const xml = await (await fetch(`${base}/mail/config-v1.1.xml`)).text();
    assert.ok(!servers(xml, 'incomingServer').some((s) => s.type === 'pop3'));
  });
});

describe('Outlook Autodiscover (POX)', () => {
  test('POST over HTTPS with the address: IMAP, POP3 and SMTP from the running listeners, the address as login', async () => {
    for (const path of ['/autodiscover/autodiscover.xml', '/Autodiscover/Autodiscover.xml']) {
      const res = await secure('POST', path, autodiscoverRequest('laura.verdi@example.com'));
      assert.equal(res.status, 200, path);
      const xml = res.text;
      assert.match(xml, /<Autodiscover xmlns="http:\/\/schemas\.microsoft\.com\/exchange\/autodiscover\/responseschema\/2006">/);
      assert.match(xml, /<AccountType>email<\/AccountType>\s*<Action>settings<\/Action>/);
      const p = protocols(xml);
      const login = 'laura.verdi@example.com';
      assert.deepEqual(p.find((x) => x.type === 'IMAP'), { type: 'IMAP', server: 'mx.example.com', port: server.ports.imaps, ssl: 'on', encryption: undefined, login });
      assert.equal(p.find((x) => x.type === 'POP3')?.port, server.ports.pop3s);
      assert.deepEqual(p.find((x) => x.type === 'SMTP'), { type: 'SMTP', server: 'mx.example.com', port: server.ports.smtps, ssl: 'on', encryption: undefined, login });
    }
  });

  test('answers the same for every address: only the address asked about differs', async () => {
    const ask = async (a: string) => (await secure('POST', '/autodiscover/autodiscover.xml', autodiscoverRequest(a))).text.replaceAll(a, 'ADDRESS');
    const known = await ask('john@example.com');
    assert.doesNotMatch(known, /john\.smith/, 'the sAMAccountName is not disclosed');
    for (const a of ['nobody@example.com', 'old@example.com', 'someone@elsewhere.example']) assert.equal(await ask(a), known, a);
  });

  test('GET over HTTPS answers too', async () => {
    const res = await secure('GET', '/autodiscover/autodiscover.xml?emailaddress=laura.verdi@example.com');
    assert.equal(res.status, 200);
    assert.equal(protocols(res.text).find((x) => x.type === 'SMTP')?.port, server.ports.smtps);
  });

  test('plain HTTP gives no settings, only a redirect to the HTTPS listener (302 for GET, 307 for POST)', async () => {
    const target = `https://mx.example.com:${server.ports.https}/autodiscover/autodiscover.xml`;
    const get = await fetch(`${base}/autodiscover/autodiscover.xml?emailaddress=laura.verdi@example.com`, { redirect: 'manual' });
    assert.equal(get.status, 302);
    assert.equal(get.headers.get('location'), target);
    assert.doesNotMatch(await get.text(), /<Protocol>/);
    const post = await fetch(`${base}/Autodiscover/Autodiscover.xml`, { method: 'POST', body: autodiscoverRequest('laura.verdi@example.com'), redirect: 'manual' });
    assert.equal(post.status, 307);
    assert.equal(post.headers.get('location'), target);
  });

  test('the admin API is not on the http or https listener', async () => {
    assert.equal((await fetch(`${base}/api/settings`)).status, 404);
    assert.equal((await secure('GET', '/api/settings')).status, 404);
  });
});

describe('the login autoconfiguration offers (the address) works', () => {
  for (const [login, what] of ADDRESS_LOGINS) {
    test(`${login} (${what}) logs in on IMAP, POP3 and SMTP`, async () => {
      assert.deepEqual(await loginEverywhere(server.ports as never, login, PASSWORD), { imap: true, pop3: true, smtp: true });
    });
  }
});

describe('listeners turned off', () => {
  test('only STARTTLS listeners: Autodiscover asks for STARTTLS (Encryption TLS) on their ports', async () => {
    const s = await startTestServer({ listeners: { imaps: false, pop3s: false, smtps: false, smtp: false, submission: { port: 0, host: '127.0.0.1' }, imap: { port: 0, host: '127.0.0.1' }, pop3: false } });
    try {
      const xml = await new Promise<string>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port: s.ports.https, method: 'POST', path: '/autodiscover/autodiscover.xml', ca: s.tls.cert, checkServerIdentity: () => undefined }, (res) => {
          let t = '';
          res.setEncoding('utf8').on('data', (d: string) => (t += d)).on('end', () => resolve(t));
        });
        req.on('error', reject);
        req.end(autodiscoverRequest('laura.verdi@example.com'));
      });
      const p = protocols(xml);
      assert.deepEqual(p.map((x) => [x.type, x.port, x.encryption]), [
        ['IMAP', s.ports.imap, 'TLS'],
        ['SMTP', s.ports.submission, 'TLS'],
      ]);
      const cfg = await (await fetch(`http://127.0.0.1:${s.ports.http}/mail/config-v1.1.xml`)).text();
      assert.deepEqual(servers(cfg, 'incomingServer').map((x) => x.port), [s.ports.imap]);
    } finally {
      await s.close();
    }
  });

  test('https off: the http redirect points at port 443 of the hostname (a proxy may terminate TLS there)', async () => {
    const s = await startTestServer({ listeners: { https: false } });
    try {
      const r = await fetch(`http://127.0.0.1:${s.ports.http}/autodiscover/autodiscover.xml`, { redirect: 'manual' });
      assert.equal(r.status, 302);
      assert.equal(r.headers.get('location'), 'https://mx.example.com/autodiscover/autodiscover.xml');
    } finally {
      await s.close();
    }
  });
});
