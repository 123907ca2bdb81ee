/**
 * What the SMTP listeners did since start, for /metrics and the dashboard: messages received per listener,
 * refusals per step and reply code, and the last refusals (the seed's maillog, kept in memory).
 */
export interface Rejection {
  at: string;
  listener: string;
  client: string;
  stage: 'connect' | 'mail' | 'rcpt' | 'data';
  from?: string;
  to?: string;
  reply: string;
}

const KEEP = 100;

export class SmtpStats {
  /** listener → messages queued */
  readonly received = new Map<string, number>();
  /** "stage code enhanced" → refusals */
  readonly rejected = new Map<string, number>();
  private readonly recent: Rejection[] = [];

  countReceived(listener: string): void {
    this.received.set(listener, (this.received.get(listener) ?? 0) + 1);
  }

  countRejected(r: Omit<Rejection, 'at'>): void {
    const m = /^(\d{3})\s+(\d\.\d{1,3}\.\d{1,3})?/.exec(r.reply);
    const key = `${r.stage} ${m?.[1] ?? '?'} ${m?.[2] ?? ''}`.trim();
    this.rejected.set(key, (this.rejected.get(key) ?? 0) + 1);
    this.recent.push({ at: new Date().toISOString(), ...r });
    if (this.recent.length > KEEP) this.recent.shift();
  }

  recentRejections(n = 20): Rejection[] {
    return this.recent.slice(-n).reverse();
  }
}
