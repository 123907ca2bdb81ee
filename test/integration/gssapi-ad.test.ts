/**
 * Kerberos single sign-on (SASL GSSAPI, RFC 4752) against the Samba AD DC (CORP.EXAMPLE), issue 13 item 4: the
 * harness (test/harness/kerberos.ts) gives a service account of this test the SPNs imap/, pop/ and smtp/<host>,
 * exports their keytab, makes two users and kinits them; postern runs in-process with `hostname` = <host> and
 * auth.kerberos.keytab, its own self-signed certificate for <host>, and curl logs in with its ticket
 * (`--login-options AUTH=GSSAPI -u :`), the host name resolving to loopback (`--resolve`):
 *   - IMAP with STARTTLS, POP3 with STLS, SMTP submission with STARTTLS (a message to the user itself, then read
 *     back over IMAP and POP3 with the ticket);
 *   - a user disabled in AD after kinit (and after its service tickets were issued) is refused on all three;
 *   - a token that is not a valid AP-REQ is refused (IMAP NO, POP3 -ERR, SMTP 535);
 *   - GSSAPI is announced inside TLS only, like the password mechanisms.
 */
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseConfig } from '../../src/config/load.ts';
import { createLogger } from '../../src/lib/logger.ts';
import { startServer, type Server } from '../../src/server.ts';
import { execChild, runChild } from '../harness/children.ts';
import { createUser, disableUser, GSSAPI_SERVICES, kinit, klist, krb5Env, kvno, randomPassword, servicePrincipals, type KerberosDc } from '../harness/kerberos.ts';
import { CLIENT_PACKAGES, ensureDebianPackages } from '../harness/packages.ts';
import { adDirectory, haveAd, ROOT } from '../helpers/cli.ts';
import { waitFor } from '../helpers/wait.ts';
import { LineClient } from '../helpers/line-client.ts';
import { logCapture } from '../protocol/smtp-env.ts';

const skip = haveAd('AD') ? false : 'needs the Samba DCs: run through test/run.ts';
const TAG = randomBytes(3).toString('hex');
/** Our own host name: SPNs are unique in the domain, and corp.example maps to CORP.EXAMPLE in the DC's krb5.conf. */
const HOST = `mail-${TAG}.corp.example`;
const USER = `gss-${TAG}`;
const GONE = `gsd-${TAG}`;

interface Env {
  server: Server;
  dc: KerberosDc;
  work: string;
  dataDir: string;
  cert: string;
  lines: Record<string, unknown>[];
  ccache: string;
  goneCcache: string;
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function curl(env: Env, ccache: string, args: string[]): Promise<Run> {
  const port = /:\/\/[^:/]+:(\d+)/.exec(args[args.length - 1]!)?.[1];
  const r = await runChild(
    'curl',
    ['--silent', '--show-error', '--max-time', '60', '--cacert', env.cert, '--resolve', `${HOST}:${port}:127.0.0.1`, '--login-options', 'AUTH=GSSAPI', '-u', ':', ...args],
    { env: krb5Env(env.dc, ccache), timeoutMs: 90_000 },
  );
  return { code: r.code ?? -1, stdout: r.stdout, stderr: r.stderr };
}

function logins(env: Env, protocol: string, user: string): Record<string, unknown>[] {
  return env.lines.filter((l) => l.component === 'auth' && l.protocol === protocol && (l.user === user || l.login === `${user}@${env.dc.realm}`));
}

/** A line-at-a-time client for the raw exchanges curl will not make (a broken token). */
async function start(): Promise<Env> {
  const dc: KerberosDc = {
    dir: process.env.POSTERN_TEST_AD_DIR!,
    realm: process.env.POSTERN_TEST_AD_REALM!,
    krb5Conf: process.env.POSTERN_TEST_KRB5_CONF!,
  };
  const work = mkdtempSync(join(tmpdir(), 'postern-gssapi-'));
  const dataDir = mkdtempSync(join(tmpdir(), 'postern-gssapi-data-'));
  const keytab = join(work, 'postern.keytab');
  const sp = await servicePrincipals(dc, { account: `svc-gss-${TAG}`, hostname: HOST, keytab });

  // Two users, each with a TGT and (as a mail client has after its first connection) the three service tickets.
  const env = { dc, work, dataDir, lines: [] as Record<string, unknown>[], ccache: join(work, 'cc-user'), goneCcache: join(work, 'cc-gone') };
  for (const [login, ccache] of [[USER, env.ccache], [GONE, env.goneCcache]] as const) {
    const password = randomPassword();
    await createUser(dc, login, password);
    await kinit(dc, `${login}@${dc.realm}`, password, ccache);
    await kvno(dc, sp.principals, ccache);
  }
  // The account is disabled after its tickets were issued: they stay valid for hours, postern must still refuse.
  await disableUser(dc, GONE);

  // The server gets no krb5.conf (there is none in /etc here): the acceptor needs only its keytab, no KDC.
  delete process.env.KRB5_CONFIG;
  const { stream, lines } = logCapture();
  env.lines = lines;
  const listener = { port: 0, host: '127.0.0.1' };
  const config = parseConfig(
    {
      hostname: HOST,
      dataDir,
      directory: adDirectory('AD'),
      // No tls: postern makes a self-signed pair for its hostname (src/lib/tls.ts), which curl then trusts.
      listeners: { smtp: false, submission: listener, smtps: listener, imap: listener, imaps: listener, pop3: listener, pop3s: listener, admin: false, http: false, https: false, managesieve: listener },
      queue: { retryMinSeconds: 0.2, retryMaxSeconds: 1, scanIntervalSeconds: 0.2 },
      auth: { failureDelayMs: 0, kerberos: { keytab, realm: dc.realm } },
    },
    '(test)',
    ROOT,
  );
  const server = await startServer(config, createLogger('info', stream));
  server.core.settings.setMany({ 'filter.antivirus': false, 'filter.spam': false });
  if (!server.core.settings.getDomain('corp.example')) server.core.settings.addDomain({ name: 'corp.example', type: 'local' });
  return { ...env, server, cert: join(dataDir, 'tls', 'selfsigned-cert.pem') };
}

describe('SASL GSSAPI (Kerberos single sign-on) with curl and the Samba AD KDC', { skip, timeout: 900_000 }, () => {
  let env: Env;
  before(async () => {
    await ensureDebianPackages([CLIENT_PACKAGES.curl, CLIENT_PACKAGES.kinit]);
    env = await start();
  });
  after(async () => {
    await env?.server.close();
    if (env) {
      rmSync(env.work, { recursive: true, force: true });
      rmSync(env.dataDir, { recursive: true, force: true });
    }
  });

  it('has the user a TGT and service tickets for imap/, pop/, smtp/ and sieve/ of our host name', async () => {
    const list = await klist(env.dc, env.ccache);
    for (const service of GSSAPI_SERVICES) assert.match(list, new RegExp(`${service}/${HOST.replace(/\./g, '\\.')}@`), list);
  });

  it('announces GSSAPI inside TLS only, like the password mechanisms', async () => {
    const imap = await LineClient.open(env.server.ports.imap!);
    try {
      const [greeting] = await imap.until(/^\* OK/);
      assert.doesNotMatch(greeting!, /AUTH=GSSAPI/);
      imap.send('a STARTTLS');
      await imap.until(/^a OK/);
      await imap.tls(readCert(env), HOST);
      imap.send('b CAPABILITY');
      const caps = await imap.until(/^b OK/);
      assert.match(caps.join('\n'), /^\* CAPABILITY .*AUTH=GSSAPI/m);
    } finally {
      imap.close();
    }
    const pop = await LineClient.open(env.server.ports.pop3!);
    try {
      await pop.until(/^\+OK/);
      pop.send('CAPA');
      const before = await pop.until(/^\.$/);
      assert.ok(!before.some((l) => /GSSAPI/.test(l)), before.join('\n'));
      pop.send('STLS');
      await pop.until(/^\+OK/);
      await pop.tls(readCert(env), HOST);
      pop.send('CAPA');
      assert.ok((await pop.until(/^\.$/)).includes('SASL PLAIN GSSAPI'));
    } finally {
      pop.close();
    }
    const smtp = await LineClient.open(env.server.ports.submission!);
    try {
      await smtp.until(/^220 /);
      smtp.send('EHLO client.example');
      const ehlo = await smtp.until(/^250 /);
      assert.ok(!ehlo.some((l) => /GSSAPI/.test(l)), ehlo.join('\n'));
      smtp.send('STARTTLS');
      await smtp.until(/^220 /);
      await smtp.tls(readCert(env), HOST);
      smtp.send('EHLO client.example');
      assert.ok((await smtp.until(/^250 /)).some((l) => /^250[- ]AUTH PLAIN LOGIN GSSAPI$/.test(l)));
    } finally {
      smtp.close();
    }
  });

  it('sends over SMTP submission (STARTTLS) with the ticket, no password', async () => {
    const subject = `kerberos ${randomUUID()}`;
    const message = join(env.work, 'message.eml');
    writeFileSync(message, `From: ${USER}@corp.example\r\nTo: ${USER}@corp.example\r\nSubject: ${subject}\r\n\r\nsent with a Kerberos ticket\r\n`);
    const r = await curl(env, env.ccache, ['--ssl-reqd', '--mail-from', `${USER}@corp.example`, '--mail-rcpt', `${USER}@corp.example`, '--upload-file', message, `smtp://${HOST}:${env.server.ports.submission}`]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(logins(env, 'smtp', USER).some((l) => l.result === 'ok'), 'an SMTP login ok line');
    // ... and reads it back over IMAP (STARTTLS) with the same ticket.
    const fetched = await waitFor('the message in INBOX over IMAP', async () => {
      const f = await curl(env, env.ccache, ['--ssl-reqd', `imap://${HOST}:${env.server.ports.imap}/INBOX;UID=1`]);
      return f.code === 0 && f.stdout.includes(subject) ? f : undefined;
    }, { timeoutMs: 60_000, intervalMs: 500 });
    assert.match(fetched.stdout, /sent with a Kerberos ticket/);
    const imapLogin = logins(env, 'imap', USER).find((l) => l.result === 'ok');
    assert.ok(imapLogin, 'an IMAP login ok line');
    assert.equal(imapLogin.login, `${USER}@${env.dc.realm}`);
  });

  it('logs in over IMAP (STARTTLS, with and without SASL-IR) and POP3 (STLS) with the ticket', async () => {
    const imap = await curl(env, env.ccache, ['--ssl-reqd', `imap://${HOST}:${env.server.ports.imap}/`]);
    assert.equal(imap.code, 0, imap.stderr);
    assert.match(imap.stdout, /INBOX/);
    // The first token as an initial response (SASL-IR, RFC 4959) rather than after an empty challenge.
    const ir = await curl(env, env.ccache, ['--sasl-ir', '--ssl-reqd', `imap://${HOST}:${env.server.ports.imap}/`]);
    assert.equal(ir.code, 0, ir.stderr);
    assert.match(ir.stdout, /INBOX/);
    const pop = await curl(env, env.ccache, ['--ssl-reqd', `pop3://${HOST}:${env.server.ports.pop3}/`]);
    assert.equal(pop.code, 0, pop.stderr);
    // LIST: one line per message ("1 <size>"), the message sent in the test before.
    assert.match(pop.stdout, /^1 \d+/m);
    assert.ok(logins(env, 'pop3', USER).some((l) => l.result === 'ok'), 'a POP3 login ok line');
  });

  it('refuses an account disabled in AD although its ticket is valid (IMAP, POP3, SMTP)', async () => {
    const imap = await curl(env, env.goneCcache, ['--ssl-reqd', `imap://${HOST}:${env.server.ports.imap}/`]);
    assert.notEqual(imap.code, 0);
    const pop = await curl(env, env.goneCcache, ['--ssl-reqd', `pop3://${HOST}:${env.server.ports.pop3}/`]);
    assert.notEqual(pop.code, 0);
    const message = join(env.work, 'gone.eml');
    writeFileSync(message, `From: ${GONE}@corp.example\r\nSubject: should not go\r\n\r\nno\r\n`);
    const smtp = await curl(env, env.goneCcache, ['--ssl-reqd', '--mail-from', `${GONE}@corp.example`, '--mail-rcpt', `${USER}@corp.example`, '--upload-file', message, `smtp://${HOST}:${env.server.ports.submission}`]);
    assert.notEqual(smtp.code, 0);
    // The Kerberos exchange itself succeeded: the refusal is the AD rule, logged with its reason, on all three.
    for (const protocol of ['imap', 'pop3', 'smtp']) {
      const lines = logins(env, protocol, GONE);
      assert.ok(lines.some((l) => l.result === 'disabled' && l.reason === 'disabled'), `${protocol}: ${JSON.stringify(lines)}`);
      assert.ok(!lines.some((l) => l.result === 'ok'), `${protocol}: no login ok`);
    }
  });

  it('refuses a token that is not a valid AP-REQ (IMAP NO, POP3 -ERR, SMTP 535)', async () => {
    const junk = Buffer.from(`not a kerberos token ${randomUUID()}`).toString('base64');
    const imap = await LineClient.open(env.server.ports.imap!);
    try {
      await imap.until(/^\* OK/);
      imap.send('a STARTTLS');
      await imap.until(/^a OK/);
      await imap.tls(readCert(env), HOST);
      imap.send(`b AUTHENTICATE GSSAPI ${junk}`);
      const [done] = (await imap.until(/^b /)).slice(-1);
      assert.match(done!, /^b NO \[AUTHENTICATIONFAILED\]/);
      // The session is still unauthenticated.
      imap.send('c SELECT INBOX');
      assert.match((await imap.until(/^c /)).slice(-1)[0]!, /^c (NO|BAD)/);
    } finally {
      imap.close();
    }
    const pop = await LineClient.open(env.server.ports.pop3!);
    try {
      await pop.until(/^\+OK/);
      pop.send('STLS');
      await pop.until(/^\+OK/);
      await pop.tls(readCert(env), HOST);
      pop.send('AUTH GSSAPI');
      await pop.until(/^\+ ?$/);
      pop.send(junk);
      assert.match((await pop.until(/^[-+]/)).slice(-1)[0]!, /^-ERR \[AUTH\]/);
    } finally {
      pop.close();
    }
    const smtp = await LineClient.open(env.server.ports.submission!);
    try {
      await smtp.until(/^220 /);
      smtp.send('EHLO client.example');
      await smtp.until(/^250 /);
      smtp.send('STARTTLS');
      await smtp.until(/^220 /);
      await smtp.tls(readCert(env), HOST);
      smtp.send('EHLO client.example');
      await smtp.until(/^250 /);
      smtp.send(`AUTH GSSAPI ${junk}`);
      assert.match((await smtp.until(/^\d{3} /)).slice(-1)[0]!, /^535 5\.7\.8/);
      // Still not authenticated: submission wants AUTH before MAIL.
      smtp.send(`MAIL FROM:<${USER}@corp.example>`);
      assert.match((await smtp.until(/^\d{3} /)).slice(-1)[0]!, /^530 /);
    } finally {
      smtp.close();
    }
  });

  /** sieve-connect with the user's ticket; our host name resolves to loopback through nss_wrapper's own hosts file. */
  async function sieveConnect(ccache: string, ...args: string[]) {
    const hosts = join(env.work, 'hosts');
    writeFileSync(hosts, `127.0.0.1 ${HOST}\n`);
    // --server HOST: sieve-connect asks for a ticket for sieve@<the name it connects to> (RFC 5804 §2.1 service name).
    const base = ['--server', HOST, '--port', String(env.server.ports.managesieve), '--authmech', 'GSSAPI', '--notlsverify', '--noclearauth'];
    return execChild('sieve-connect', [...base, ...args], {
      env: { ...krb5Env(env.dc, ccache), LD_PRELOAD: 'libnss_wrapper.so', NSS_WRAPPER_HOSTS: hosts },
      timeout: 90_000,
    });
  }

  it('sieve-connect logs in to ManageSieve with the ticket (SASL GSSAPI, service sieve/HOST) and uploads a script', { timeout: 300_000 }, async () => {
    await ensureDebianPackages([CLIENT_PACKAGES.sieveConnect, CLIENT_PACKAGES.perlGssapi, CLIENT_PACKAGES.nssWrapper]);
    const local = join(env.work, 'gss.sieve');
    writeFileSync(local, 'keep;\n');
    await sieveConnect(env.ccache, '--upload', '--localsieve', local, '--remotesieve', 'gss');
    const { stdout } = await sieveConnect(env.ccache, '--list');
    assert.match(stdout, /"?gss"?/);
    const line = await waitFor('a managesieve GSSAPI login line', () =>
      env.lines.find((l) => l.component === 'managesieve' && l.mechanism === 'GSSAPI' && l.result === 'ok'),
    );
    assert.equal(String(line.user).toLowerCase(), USER.toLowerCase());
    // Refused for the account disabled in AD although its ticket is valid.
    await assert.rejects(sieveConnect(env.goneCcache, '--list'));
    await waitFor('the refusal of the disabled account', () =>
      env.lines.find((l) => l.component === 'managesieve' && l.mechanism === 'GSSAPI' && l.result === 'disabled'),
    );
  });
});

function readCert(env: Env): string {
  return readFileSync(env.cert, 'utf8');
}
