/**
 * The TRANSACTION state's view of INBOX (RFC 1939 §5): the messages as they were at login, numbered from 1, and the
 * ones marked by DELE. Only QUIT (the UPDATE state) removes them; a dropped connection removes nothing (§6).
 */
import type { MailboxOwner } from '../store/types.js';

export interface DropMessage {
  uid: number;
  size: number;
}

export class Maildrop {
  readonly deleted = new Set<number>();

  constructor(
    readonly owner: MailboxOwner,
    readonly uidValidity: number,
    readonly messages: DropMessage[],
  ) {}

  /** The message numbered `arg` when it exists and is not deleted. */
  get(arg: string): { n: number; message: DropMessage } | { error: string } {
    if (!/^\d{1,10}$/.test(arg)) return { error: 'invalid message number' };
    const n = Number(arg);
    const message = this.messages[n - 1];
    if (!message) return { error: 'no such message' };
    if (this.deleted.has(n)) return { error: `message ${n} already deleted` };
    return { n, message };
  }

  /** RFC 1939 §7 UIDL: printable ASCII, at most 70 characters; shared with IMAP's view of INBOX. */
  uidl(message: DropMessage): string {
    return `${this.uidValidity}.${message.uid}`;
  }

  live(): { n: number; message: DropMessage }[] {
    const out: { n: number; message: DropMessage }[] = [];
    this.messages.forEach((message, i) => {
      if (!this.deleted.has(i + 1)) out.push({ n: i + 1, message });
    });
    return out;
  }

  totals(): { count: number; octets: number } {
    const live = this.live();
    return { count: live.length, octets: live.reduce((s, l) => s + l.message.size, 0) };
  }
}
