/**
 * Messages the IMAP unit tests share: a multipart/mixed with a text part and a nested message/rfc822, and a To
 * header with a group, a quoted display name and a comment (for ENVELOPE's address lists).
 */
export const NESTED = [
  'From: anna@example.com',
  'To: team: a@x.com, "B, b" <b@x.com>;, c@y.org (Cee)',
  'Subject: hi',
  'Content-Type: multipart/mixed; boundary="b1"',
  '',
  '--b1',
  'Content-Type: text/plain; charset=us-ascii',
  '',
  'Hello',
  '--b1',
  'Content-Type: message/rfc822',
  '',
  'Subject: inner',
  '',
  'inner body',
  '--b1--',
  '',
].join('\r\n');
