/**
 * mailauth (SPF/DKIM/DMARC checks, DKIM signing) is loaded on first use, not at start: with its dependencies it is
 * ~11 MB of heap and ~30 MB of RSS that a server without SMTP listeners, or one that has neither received nor sent
 * mail yet, does not need (issue 11: the idle IMAP server's memory). The first message pays the load, once.
 */
let mailauth: Promise<typeof import('mailauth')> | undefined;

export function loadMailauth(): Promise<typeof import('mailauth')> {
  return (mailauth ??= import('mailauth'));
}
