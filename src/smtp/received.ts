/** The Received trace field (RFC 5321 §4.4), with the RFC 3848 protocol keywords. */
export interface ReceivedInfo {
  helo?: string | false;
  clientHostname?: string;
  clientAddress: string;
  hostname: string;
  queueId: string;
  secure: boolean;
  authenticated: boolean;
  esmtp: boolean;
  /** Named only when there is one recipient, so Bcc recipients are not disclosed. */
  recipient?: string;
  tls?: { protocol?: string; cipher?: string };
  date?: Date;
}

export function receivedHeader(r: ReceivedInfo): string {
  const proto = `${r.esmtp ? 'ESMTP' : 'SMTP'}${r.secure ? 'S' : ''}${r.authenticated ? 'A' : ''}`;
  const helo = r.helo || 'unknown';
  const addr = r.clientAddress.includes(':') ? `IPv6:${r.clientAddress}` : r.clientAddress;
  const rdns = r.clientHostname && !r.clientHostname.startsWith('[') ? r.clientHostname : 'unknown';
  const tls = r.secure && r.tls?.protocol ? `\r\n\t(using ${r.tls.protocol} with cipher ${r.tls.cipher})` : '';
  const rcpt = r.recipient ? `\r\n\tfor <${r.recipient}>` : '';
  const date = (r.date ?? new Date()).toUTCString().replace('GMT', '+0000');
  return `Received: from ${helo} (${rdns} [${addr}])${tls}\r\n\tby ${r.hostname} (postern) with ${proto} id ${r.queueId}${rcpt};\r\n\t${date}\r\n`;
}
