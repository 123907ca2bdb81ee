/**
 * The SMTP access policy (issue 3 §2): who may relay, no open relay in any address form, "local network only"
 * addresses, what RCPT TO answers for unknown, disabled and unreachable recipients, and the HELO check.
 * The client is always 127.0.0.1, which is not trusted unless a setting says so.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Directory } from '../../src/directory/types.ts';
import { TempFailure } from '../../src/lib/errors.ts';
import { sendRaw, type RawSmtp } from '../helpers/raw-smtp.ts';
import type { TestServer } from '../helpers/server.ts';
import type { SmtpSink } from '../helpers/smtp-sink.ts';
import { JOHN, message, queued, rawClient, startSmtpTestServer, startWithRemote, submissionClient, transport, waitForEmptyQueue } from './smtp-env.ts';

let server: TestServer;
let sink: SmtpSink;
let close: () => Promise<void>;

before(async () => {
  ({ server, sink, close } = await startWithRemote({
    'other.example': { MX: [{ exchange: 'mx.other.example', priority: 10 }] },
    'mx.other.example': { A: ['127.0.0.1'] },
  }));
  server.core.settings.addDomain({ name: 'partner.example', type: 'relay', nexthop: `127.0.0.1:${sink.port}` });
});

after(() => close());

/** A port 25 session from an outside server, MAIL FROM given. */
async function outsider(from = 'sender@outside.example'): Promise<RawSmtp> {
  const c = await rawClient(server, 'smtp', 'mta.outside.example');
  const r = await c.command(`MAIL FROM:<${from}>`);
  assert.equal(r.code, 250, r.raw);
  return c;
}

async function rcpt(c: RawSmtp, address: string) {
  return c.command(`RCPT TO:<${address}>`);
}

describe('relaying', () => {
  test('refuses relay to another domain from an untrusted client with 554 5.7.1', async () => {
    const c = await outsider();
    try {
      const r = await rcpt(c, 'bob@other.example');
      assert.equal(r.code, 554, r.raw);
      assert.match(r.text, /^5\.7\.1 .*Relay access denied/);
    } finally {
      c.close();
    }
  });

  const tricks: [string, string][] = [
    ['user%other.example@example.com', 'the percent hack'],
    ['USER%OTHER.EXAMPLE@EXAMPLE.COM', 'the percent hack in capitals'],
    ['@mx.example.com,@relay.example:user@other.example', 'a source route (RFC 5321 Appendix C)'],
    ['@mx.example.com:user%other.example@example.com', 'a source route with the percent hack'],
    ['other.example!user@example.com', 'a bang path'],
    ['"user@other.example"@example.com', 'a quoted local part holding an address'],
    ['"user%other.example"@example.com', 'a quoted local part holding the percent hack'],
    ['user@other.example@example.com', 'two @'],
    ['user@other.example.', 'a trailing dot on a remote domain'],
    ['user@[127.0.0.1]', 'an address literal'],
    ['user@other.example\tfoo@example.com', 'a tab inside the address'],
  ];
  for (const [address, what] of tricks) {
    test(`refuses relay for "${address}" from an untrusted client (${what})`, async () => {
      const c = await outsider();
      try {
        const r = await rcpt(c, address);
        assert.ok(r.code >= 500 && r.code < 600, `${address}: ${r.raw}`);
        const data = await c.command('DATA');
        assert.equal(data.code, 503, 'no recipient, no DATA');
      } finally {
        c.close();
      }
    });
  }

  test('refuses the percent hack, bang paths and quoted local parts even from authenticated users', async () => {
    const c = await submissionClient(server);
    try {
      assert.equal((await c.command('MAIL FROM:<john@example.com>')).code, 250);
      for (const address of ['user%other.example@example.com', 'other.example!user@example.com', '"user@other.example"@example.com']) {
        const r = await rcpt(c, address);
        assert.ok(r.code >= 500, `${address}: ${r.raw}`);
      }
    } finally {
      c.close();
    }
  });

  test('a source route to a local address is ignored, not followed (RFC 5321 §3.6.1)', async () => {
    const c = await outsider();
    try {
      assert.equal((await rcpt(c, '@relay.other.example:paolo.neri@example.com')).code, 250);
      assert.equal((await c.command('DATA')).code, 354);
      c.write(`${message('source route')}.\r\n`);
      assert.equal((await c.reply()).code, 250);
    } finally {
      c.close();
    }
    const [mail] = await server.waitForMail('paolo.neri');
    assert.match(mail, /^Delivered-To: paolo\.neri@example\.com\r$/m);
  });

  test('accepts mail for local and relay domains from anyone, and relays the relay domain to its next hop', async () => {
    const before = sink.messages.length;
    const c = await rawClient(server, 'smtp', 'mta.outside.example');
    try {
      const r = await sendRaw(c, 'sender@outside.example', ['it.tech@example.com', 'someone@partner.example'], message('local and relay domain'));
      assert.equal(r.code, 250, r.raw);
    } finally {
      c.close();
    }
    await server.waitForMail('it.tech');
    await waitForEmptyQueue(server);
    assert.equal(sink.messages.length, before + 1);
    assert.deepEqual(sink.messages.at(-1)!.to, ['someone@partner.example']);
  });

  test('relays for the smtp.relayFrom addresses and networks, as soon as the setting changes', async (t) => {
    const { settings } = server.core;
    t.after(() => settings.set('smtp.relayFrom', []));
    const tryRelay = async () => {
      const c = await outsider('scanner@example.com');
      try {
        return (await rcpt(c, 'bob@other.example')).code;
      } finally {
        c.close();
      }
    };
    settings.set('smtp.relayFrom', ['127.0.0.1']);
    assert.equal(await tryRelay(), 250, 'a single address');
    settings.set('smtp.relayFrom', ['10.0.0.0/8', '127.0.0.0/8']);
    assert.equal(await tryRelay(), 250, 'a network');
    settings.set('smtp.relayFrom', ['10.0.0.0/8', '127.0.0.2']);
    assert.equal(await tryRelay(), 554, 'other addresses only');
    settings.set('smtp.trustedNetworks', ['127.0.0.0/8']);
    t.after(() => settings.set('smtp.trustedNetworks', []));
    assert.equal(await tryRelay(), 554, 'the trusted (local) network may write to local-only addresses, not relay');
    settings.set('smtp.trustedNetworks', []);

    settings.set('smtp.relayFrom', ['127.0.0.1']);
    const before = sink.messages.length;
    const info = await transport(server, 'smtp').sendMail({
      envelope: { from: 'scanner@example.com', to: ['bob@other.example'] },
      raw: message('scan to mail'),
    });
    assert.match(info.response, /^250 /);
    await waitForEmptyQueue(server);
    assert.equal(sink.messages.length, before + 1, 'delivered to the MX of other.example');
    assert.deepEqual(sink.messages.at(-1)!.to, ['bob@other.example']);
  });

  test('relays for authenticated users (587)', async () => {
    const before = sink.messages.length;
    await transport(server, 'submission', JOHN).sendMail({ from: 'john@example.com', to: 'carol@other.example', subject: 'out', text: 'out' });
    await waitForEmptyQueue(server);
    assert.equal(sink.messages.length, before + 1);
    assert.equal(sink.messages.at(-1)!.from, 'john@example.com');
  });
});

describe('"local network only" addresses', () => {
  before(() => {
    server.core.settings.addPseudonym({
      localPart: 'staff-only',
      domains: ['example.com'],
      target: { kind: 'user', name: 'giulia.gallo' },
      localNetworkOnly: true,
    });
  });

  test('refuse mail from outside with 550 5.7.1', async () => {
    const c = await outsider();
    try {
      const r = await rcpt(c, 'staff-only@example.com');
      assert.equal(r.code, 550, r.raw);
      assert.match(r.text, /^5\.7\.1 .*local network only/);
      assert.equal((await rcpt(c, 'giulia.gallo@example.com')).code, 250, 'her own address is not restricted');
    } finally {
      c.close();
    }
  });

  test('accept mail from smtp.trustedNetworks, smtp.relayFrom and authenticated users', async (t) => {
    const { settings } = server.core;
    t.after(() => {
      settings.set('smtp.trustedNetworks', []);
      settings.set('smtp.relayFrom', []);
    });
    for (const [key, value] of [
      ['smtp.trustedNetworks', ['127.0.0.0/8']],
      ['smtp.relayFrom', ['127.0.0.1']],
    ] as const) {
      settings.set(key, value);
      const c = await outsider();
      try {
        assert.equal((await rcpt(c, 'staff-only@example.com')).code, 250, key);
      } finally {
        c.close();
      }
      settings.set(key, []);
    }
    const c = await submissionClient(server);
    try {
      const r = await sendRaw(c, 'john@example.com', ['staff-only@example.com'], message('internal only'));
      assert.equal(r.code, 250, r.raw);
    } finally {
      c.close();
    }
    const [mail] = await server.waitForMail('giulia.gallo');
    assert.match(mail, /^Delivered-To: staff-only@example\.com\r$/m);
  });
});

describe('recipients', () => {
  test('refuses unknown local recipients at RCPT time with 550 5.1.1', async () => {
    const c = await outsider();
    try {
      for (const address of ['nobody@example.com', 'nobody@example.org', 'svc-mail@example.com']) {
        const r = await rcpt(c, address);
        assert.equal(r.code, 550, `${address}: ${r.raw}`);
        assert.match(r.text, /^5\.1\.1 /);
      }
    } finally {
      c.close();
    }
  });

  test('refuses disabled and expired accounts with 550 5.2.1, and takes mail for locked and new users', async () => {
    const c = await outsider();
    try {
      for (const address of ['old@example.com', 'contractor@example.com']) {
        const r = await rcpt(c, address);
        assert.equal(r.code, 550, `${address}: ${r.raw}`);
        assert.match(r.text, /^5\.2\.1 /);
      }
      for (const address of ['locked@example.com', 'newhire@example.com', 'Carla@EXAMPLE.com']) {
        assert.equal((await rcpt(c, address)).code, 250, address);
      }
    } finally {
      c.close();
    }
  });

  test('answers 451 4.4.3 when the directory cannot answer, and 454 to AUTH', async () => {
    const down = await startSmtpTestServer({
      directory: { type: 'ldap', urls: ['ldaps://127.0.0.1:1'], baseDN: 'DC=x', bindDN: 'CN=x', bindPassword: 'x', connectTimeoutMs: 500 },
    });
    try {
      const c = await rawClient(down, 'smtp', 'mta.outside.example');
      assert.equal((await c.command('MAIL FROM:<sender@outside.example>')).code, 250);
      for (let i = 0; i < 12; i++) {
        // More than smtp.errorLimit tries: a temporary failure is not held against the client.
        const r = await rcpt(c, 'john@example.com');
        assert.equal(r.code, 451, r.raw);
        assert.match(r.text, /^4\.4\.3 /);
      }
      assert.equal((await rcpt(c, 'bob@other.example')).code, 554, 'remote addresses need no directory: still refused');
      c.close();

      const s = await rawClient(down, 'submission');
      await s.starttls();
      await s.command('EHLO client.example.net');
      const auth = await s.authPlain('john.smith', 'Corp!Passw0rd');
      assert.equal(auth.code, 454, auth.raw);
      assert.match(auth.text, /^4\.7\.0 /);
      s.close();
      assert.equal((await queued(down)).length, 0);
    } finally {
      await down.close();
    }
  });
});

describe('a directory that stops answering in the middle of a session', () => {
  test('answers 451 4.4.3 to MAIL FROM and RCPT TO for addresses it must look up, and keeps serving fresh ones', async (t) => {
    const dir = server.core.directory as unknown as { backend: Directory };
    const real = dir.backend;
    const c = await submissionClient(server);
    try {
      // john@example.com is looked up (and cached) now, while the directory works.
      assert.equal((await c.command('MAIL FROM:<john@example.com>')).code, 250);
      assert.equal((await c.command('RCPT TO:<john@example.com>')).code, 250);
      assert.equal((await c.command('RSET')).code, 250);
      dir.backend = new Proxy(real, {
        get(target, prop, receiver) {
          if (prop === 'close') return Reflect.get(target, prop, receiver);
          return async () => {
            throw new TempFailure('test: every domain controller is unreachable');
          };
        },
      });
      t.after(() => {
        dir.backend = real;
      });
      const from = await c.command('MAIL FROM:<j.smith@example.com>');
      assert.equal(from.code, 451, from.raw);
      assert.match(from.text, /^4\.4\.3 /);
      assert.equal((await c.command('MAIL FROM:<john@example.com>')).code, 250, 'a cached answer is still used');
      const to = await c.command('RCPT TO:<mario@example.com>');
      assert.equal(to.code, 451, to.raw);
      assert.match(to.text, /^4\.4\.3 /);
      assert.equal((await c.command('RCPT TO:<john@example.com>')).code, 250);
    } finally {
      c.close();
    }
  });
});

describe('HELO', () => {
  test('takes any HELO by default', async () => {
    const c = await rawClient(server, 'smtp', 'localhost');
    try {
      assert.equal((await c.command('MAIL FROM:<sender@outside.example>')).code, 250);
    } finally {
      c.close();
    }
  });

  test('with smtp.rejectInvalidHelo, refuses a HELO that is not a fully-qualified name from strangers', async (t) => {
    const { settings } = server.core;
    settings.set('smtp.rejectInvalidHelo', true);
    t.after(() => settings.set('smtp.rejectInvalidHelo', false));
    for (const helo of ['localhost', 'pc-42', '127.0.0.1', '192.0.2.1']) {
      const c = await rawClient(server, 'smtp', helo);
      try {
        const r = await c.command('MAIL FROM:<sender@outside.example>');
        assert.equal(r.code, 504, `${helo}: ${r.raw}`);
        assert.match(r.text, /^5\.5\.2 .*fully-qualified/);
      } finally {
        c.close();
      }
    }
    for (const helo of ['mta.outside.example', '[127.0.0.1]', '[IPv6:::1]']) {
      const c = await rawClient(server, 'smtp', helo);
      try {
        assert.equal((await c.command('MAIL FROM:<sender@outside.example>')).code, 250, helo);
      } finally {
        c.close();
      }
    }
    // Our own printers and users are not strangers.
    settings.set('smtp.relayFrom', ['127.0.0.1']);
    t.after(() => settings.set('smtp.relayFrom', []));
    const printer = await rawClient(server, 'smtp', 'printer');
    try {
      assert.equal((await printer.command('MAIL FROM:<printer@example.com>')).code, 250);
    } finally {
      printer.close();
    }
  });

  test('greets and answers EHLO with the configured hostname', async () => {
    const c = await rawClient(server, 'smtp', false);
    try {
      assert.match(c.greeting.raw, /^220 mx\.example\.com ESMTP postern\r\n$/);
      const r = await c.command('HELO mta.outside.example');
      assert.equal(r.code, 250);
      assert.match(r.text, /^mx\.example\.com /);
    } finally {
      c.close();
    }
  });
});
