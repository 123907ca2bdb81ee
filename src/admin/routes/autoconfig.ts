/**
 * Client autoconfiguration, built at each request from the listeners that are running (their bound ports), the
 * `hostname` and the live settings (mailbox.imap / mailbox.pop3 switch a protocol off):
 *  - Thunderbird: `/.well-known/autoconfig/mail/config-v1.1.xml` and `/mail/config-v1.1.xml` (the autoconfig
 *    host name form), clientConfig 1.1, on the `http` and `https` listeners;
 *  - Outlook: Autodiscover "POX" `POST /autodiscover/autodiscover.xml` (GET answers the same) on the `https`
 *    listener; Outlook takes settings only over HTTPS, so the `http` listener answers it with a redirect there
 *    (the "HTTP redirect method" Outlook tries on http://autodiscover.DOMAIN).
 *
 * Nothing on a public listener tells who exists (DESIGN.md §6): the answer is the same for every address, known or
 * not, and never looks at the directory. The user name offered is the address itself (`%EMAILADDRESS%`, or the
 * address of the Autodiscover request): the authenticator logs users in by primary address and UPN as well as by
 * sAMAccountName, so the address works and no login name is disclosed.
 */
import type { AdminDeps, App } from '../types.js';

function xml(s: string): string {
  return s.replace(/[<>&'"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' })[c]!);
}

interface Endpoint {
  protocol: 'imap' | 'pop3' | 'smtp';
  port: number;
  /** SSL: implicit TLS; STARTTLS: upgrade on the plain port. */
  socket: 'SSL' | 'STARTTLS';
}

/** The running client-facing listeners, implicit TLS first (what clients prefer when both exist). */
export function endpoints(deps: AdminDeps): Endpoint[] {
  const p = deps.ports;
  const out: Endpoint[] = [];
  const add = (role: string, protocol: Endpoint['protocol'], socket: Endpoint['socket']) => {
    if (p[role] !== undefined) out.push({ protocol, port: p[role], socket });
  };
  if (deps.settings.get('mailbox.imap')) {
    add('imaps', 'imap', 'SSL');
    add('imap', 'imap', 'STARTTLS');
  }
  if (deps.settings.get('mailbox.pop3')) {
    add('pop3s', 'pop3', 'SSL');
    add('pop3', 'pop3', 'STARTTLS');
  }
  add('smtps', 'smtp', 'SSL');
  add('submission', 'smtp', 'STARTTLS');
  return out;
}

export function thunderbirdConfig(deps: AdminDeps, email?: string): string {
  const username = '%EMAILADDRESS%';
  const local = deps.settings.listDomains().filter((d) => d.type === 'local');
  const asked = email?.includes('@') ? email.slice(email.lastIndexOf('@') + 1).toLowerCase() : undefined;
  const id = local.find((d) => d.name === asked)?.name ?? local[0]?.name ?? deps.hostname;
  const host = xml(deps.hostname);
  const server = (e: Endpoint) => {
    const tag = e.protocol === 'smtp' ? 'outgoingServer' : 'incomingServer';
    return [
      `    <${tag} type="${e.protocol}">`,
      `      <hostname>${host}</hostname>`,
      `      <port>${e.port}</port>`,
      `      <socketType>${e.socket}</socketType>`,
      `      <authentication>password-cleartext</authentication>`,
      `      <username>${username}</username>`,
      `    </${tag}>`,
    ];
  };
  const eps = endpoints(deps);
  // Thunderbird takes the first incoming server as the default: IMAP before POP3, STARTTLS as the issue asks.
  const order = (e: Endpoint) => (e.protocol === 'imap' ? 0 : e.protocol === 'pop3' ? 2 : 4) + (e.socket === 'STARTTLS' ? 0 : 1);
  eps.sort((a, b) => order(a) - order(b));
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<clientConfig version="1.1">',
    `  <emailProvider id="${xml(id)}">`,
    ...local.map((d) => `    <domain>${xml(d.name)}</domain>`),
    `    <displayName>${xml(id)} mail</displayName>`,
    `    <displayShortName>${xml(id)}</displayShortName>`,
    ...eps.filter((e) => e.protocol !== 'smtp').flatMap(server),
    ...eps.filter((e) => e.protocol === 'smtp').flatMap(server),
    '  </emailProvider>',
    '</clientConfig>',
    '',
  ].join('\n');
}

export function autodiscoverResponse(deps: AdminDeps, email: string | undefined): string {
  // The address the client asked about, echoed: the same answer for every address.
  const login = email && email.includes('@') && email.length <= 320 ? xml(email.trim()) : '';
  const protocol = (e: Endpoint) => [
    '      <Protocol>',
    `        <Type>${e.protocol.toUpperCase()}</Type>`,
    `        <Server>${xml(deps.hostname)}</Server>`,
    `        <Port>${e.port}</Port>`,
    '        <DomainRequired>off</DomainRequired>',
    ...(login ? [`        <LoginName>${login}</LoginName>`] : []),
    '        <SPA>off</SPA>',
    // Outlook: SSL on is implicit TLS; Encryption TLS asks for STARTTLS on the plain port.
    e.socket === 'SSL' ? '        <SSL>on</SSL>' : '        <Encryption>TLS</Encryption>',
    '        <AuthRequired>on</AuthRequired>',
    ...(e.protocol === 'smtp' ? ['        <UsePOPAuth>off</UsePOPAuth>', '        <SMTPLast>off</SMTPLast>'] : []),
    '      </Protocol>',
  ];
  // One entry per protocol: Outlook uses the first of a type. Implicit TLS first (endpoints() order).
  const seen = new Set<string>();
  const eps = endpoints(deps).filter((e) => !seen.has(e.protocol) && seen.add(e.protocol));
  return [
    '<?xml version="1.0" encoding="utf-8"?>',
    '<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006">',
    '  <Response xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a">',
    '    <Account>',
    '      <AccountType>email</AccountType>',
    '      <Action>settings</Action>',
    ...eps.flatMap(protocol),
    '    </Account>',
    '  </Response>',
    '</Autodiscover>',
    '',
  ].join('\n');
}

/** `<EMailAddress>` of an Autodiscover request (POX). */
function requestedAddress(body: unknown): string | undefined {
  if (typeof body !== 'string') return undefined;
  return /<EMailAddress>\s*([^<\s]{1,320})\s*<\/EMailAddress>/i.exec(body)?.[1];
}

/** Where the http listener sends Autodiscover: the https listener, or port 443 of the hostname when it is off. */
function autodiscoverUrl(deps: AdminDeps): string {
  const port = deps.ports.https;
  return `https://${deps.hostname}${port === undefined || port === 443 ? '' : `:${port}`}/autodiscover/autodiscover.xml`;
}

/** `secure`: the app answers over TLS (the https listener); else Autodiscover is only a redirect. */
export function autoconfigRoutes(app: App, deps: AdminDeps, opts: { secure: boolean }): void {
  for (const path of ['/.well-known/autoconfig/mail/config-v1.1.xml', '/mail/config-v1.1.xml']) {
    app.get(path, async (req, reply) => {
      const { emailaddress } = req.query as { emailaddress?: string };
      return reply.type('application/xml; charset=utf-8').send(thunderbirdConfig(deps, emailaddress));
    });
  }
  if (!opts.secure) {
    // 302 for GET is what Outlook's redirect method expects; 307 keeps a POST a POST.
    app.get('/autodiscover/autodiscover.xml', async (_req, reply) => reply.redirect(autodiscoverUrl(deps), 302));
    app.post('/autodiscover/autodiscover.xml', async (_req, reply) => reply.redirect(autodiscoverUrl(deps), 307));
    return;
  }
  app.post('/autodiscover/autodiscover.xml', async (req, reply) =>
    reply.type('application/xml; charset=utf-8').send(autodiscoverResponse(deps, requestedAddress(req.body))),
  );
  app.get('/autodiscover/autodiscover.xml', async (req, reply) => {
    const { emailaddress } = req.query as { emailaddress?: string };
    return reply.type('application/xml; charset=utf-8').send(autodiscoverResponse(deps, emailaddress));
  });
}
