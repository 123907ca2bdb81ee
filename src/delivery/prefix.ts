/**
 * The lines local delivery puts on top of a message in the Maildir (RFC 5321 §4.4: the Return-Path is added at
 * final delivery; RFC 9228: Delivered-To, which delivery also reads back to find loops). One function, because the
 * spool writes the same bytes ahead of a single-recipient message so that delivery can hard-link the spool file
 * into the Maildir instead of writing and fsyncing the message a second time (src/queue/spool.ts, issue 11).
 */
export function localDeliveryPrefix(from: string, address: string): string {
  return `Return-Path: <${from}>\r\nDelivered-To: ${address}\r\n`;
}
