/**
 * Accounts made and looked at in the run's Samba AD (POSTERN_TEST_AD_*) by the integration tests of the mailbox
 * lifecycle (mailbox-lifecycle-ad, cluster-mailboxes-ad): an admin LDAPS client, a user with a password, the
 * objectGUID the registry keys a mailbox by, and the SMTP probes they judge a mailbox's state by.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Attribute, Client } from 'ldapts';
import { decodeGuid } from '../../src/directory/guid.ts';
import { RawSmtp, type SmtpReply } from './raw-smtp.ts';

/** LDAP_SERVER_SHOW_DELETED_OID ([MS-ADTS] §3.1.1.3.4.1.14): see and reanimate tombstones. */
export const SHOW_DELETED = '1.2.840.113556.1.4.417';

/** An LDAPS client to the run's first DC, not yet bound (the caller binds as POSTERN_TEST_AD_ADMIN_DN). */
export function adAdminClient(): Client {
  const env = process.env;
  return new Client({
    url: env.POSTERN_TEST_AD_URL!,
    connectTimeout: 10_000,
    timeout: 30_000,
    tlsOptions: { ca: readFileSync(env.POSTERN_TEST_AD_CA!), rejectUnauthorized: true },
  });
}

/** An enabled user (userAccountControl 512) with `password`, and `mail` when given. */
export async function addAdUser(ldap: Client, dn: string, login: string, password: string, mail?: string): Promise<void> {
  await ldap.add(dn, [
    new Attribute({ type: 'objectClass', values: ['top', 'person', 'organizationalPerson', 'user'] }),
    new Attribute({ type: 'sAMAccountName', values: [login] }),
    ...(mail ? [new Attribute({ type: 'mail', values: [mail] })] : []),
    new Attribute({ type: 'unicodePwd', values: [Buffer.from(`"${password}"`, 'utf16le')] }),
    new Attribute({ type: 'userAccountControl', values: ['512'] }),
  ]);
}

export async function guidOf(ldap: Client, dn: string): Promise<string> {
  const { searchEntries } = await ldap.search(dn, { scope: 'base', attributes: ['objectGUID'], explicitBufferAttributes: ['objectGUID'] });
  return decodeGuid(searchEntries[0]!.objectGUID as Buffer)!;
}

const SENDER = 'someone@elsewhere.example';

/** The reply to RCPT TO:<to> after a MAIL FROM from outside (or MAIL FROM's own, marked, when that is refused). */
export async function probeRcpt(port: number, to: string, timeoutMs = 60_000): Promise<SmtpReply> {
  const c = await RawSmtp.connect(port, { timeoutMs });
  try {
    await c.ehlo();
    const from = await c.command(`MAIL FROM:<${SENDER}>`);
    if (from.code !== 250) return { ...from, text: `(at MAIL FROM) ${from.text}` };
    return await c.command(`RCPT TO:<${to}>`);
  } finally {
    await c.command('QUIT').catch(() => undefined);
    c.close();
  }
}

/** One message from outside to `to`, every reply asserted (250 at the end of DATA). */
export async function sendFromOutside(port: number, to: string, subject: string, timeoutMs = 60_000): Promise<void> {
  const c = await RawSmtp.connect(port, { timeoutMs });
  try {
    await c.ehlo();
    assert.equal((await c.command(`MAIL FROM:<${SENDER}>`)).code, 250);
    const r = await c.command(`RCPT TO:<${to}>`);
    assert.equal(r.code, 250, `RCPT ${to}: ${r.text}`);
    assert.equal((await c.command('DATA')).code, 354);
    const reply = await c.command(`From: ${SENDER}\r\nTo: ${to}\r\nSubject: ${subject}\r\n\r\nhello\r\n.`);
    assert.equal(reply.code, 250, reply.text);
  } finally {
    await c.command('QUIT').catch(() => undefined);
    c.close();
  }
}
