/**
 * Logs in over IMAP (implicit TLS, imapflow), POP3 (implicit TLS, a raw socket) and SMTP AUTH (465, nodemailer)
 * with one login and password, for the tests that check which login names work (sAMAccountName, UPN, primary
 * address: what Thunderbird autoconfig's %EMAILADDRESS% and Autodiscover's LoginName send). Each answer is `true`
 * for a successful login, else the server's refusal.
 */
import { connect } from 'node:tls';
import { ImapFlow } from 'imapflow';
import nodemailer from 'nodemailer';

export interface LoginPorts {
  imaps: number;
  pop3s: number;
  smtps: number;
}

export async function imapLogin(port: number, user: string, pass: string): Promise<true | string> {
  const c = new ImapFlow({ host: '127.0.0.1', port, secure: true, tls: { rejectUnauthorized: false }, auth: { user, pass }, logger: false });
  c.on('error', () => undefined);
  try {
    await c.connect();
    return true;
  } catch (err) {
    return String((err as { responseText?: string }).responseText ?? (err as Error).message);
  } finally {
    await c.logout().catch(() => c.close());
  }
}

export function pop3Login(port: number, user: string, pass: string, timeoutMs = 20_000): Promise<true | string> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port, rejectUnauthorized: false });
    const timer = setTimeout(() => finish(`no answer within ${timeoutMs} ms`), timeoutMs);
    let buf = '';
    let step = 0;
    const finish = (r: true | string) => {
      clearTimeout(timer);
      s.destroy();
      resolve(r);
    };
    s.on('error', (e) => finish(e.message));
    s.setEncoding('utf8').on('data', (d: string) => {
      buf += d;
      let nl: number;
      while ((nl = buf.indexOf('\r\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 2);
        if (!line.startsWith('+OK')) return finish(line);
        if (step === 0) s.write(`USER ${user}\r\n`);
        else if (step === 1) s.write(`PASS ${pass}\r\n`);
        else {
          s.write('QUIT\r\n');
          return finish(true);
        }
        step++;
      }
    });
  });
}

export async function smtpLogin(port: number, user: string, pass: string): Promise<true | string> {
  const t = nodemailer.createTransport({ host: '127.0.0.1', port, secure: true, tls: { rejectUnauthorized: false }, auth: { user, pass } });
  try {
    await t.verify();
    return true;
  } catch (err) {
    return (err as Error).message;
  } finally {
    t.close();
  }
}

/** `{ imap, pop3, smtp }` results of one login on all three protocols. */
export async function loginEverywhere(ports: LoginPorts, user: string, pass: string) {
  const [imap, pop3, smtp] = await Promise.all([imapLogin(ports.imaps, user, pass), pop3Login(ports.pop3s, user, pass), smtpLogin(ports.smtps, user, pass)]);
  return { imap, pop3, smtp };
}

/** The fixture's logins by address (fixtures/ad/corp.ldif): john.smith's mail, primary proxy address and UPN. */
export const ADDRESS_LOGINS: [string, string][] = [
  ['john@example.com', 'mail'],
  ['john.smith@example.com', 'primary proxyAddresses SMTP:'],
  ['john.smith@corp.example', 'userPrincipalName'],
  ['Laura.Verdi@Example.com', 'mail, any case'],
  ['laura.verdi@corp.example', 'userPrincipalName'],
];
