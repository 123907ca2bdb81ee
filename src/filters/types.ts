/**
 * The filter contract (DESIGN.md §3 "Filters"; maddy's checks and Haraka's hooks are the model). Each stage is a
 * small module with a name and a phase, returning a verdict value — never throwing for a verdict. The pipeline
 * runs the stages of a phase in order, stops at the first reject / discard / tempfail, collects headers from
 * `mark`, and logs every verdict with component `filter`, the stage name and the queue id.
 */

export type FilterPhase = 'connect' | 'mail' | 'rcpt' | 'data';

export type FilterAction = 'accept' | 'mark' | 'reject' | 'discard' | 'tempfail';

export interface FilterVerdict {
  action: FilterAction;
  /** SMTP reply for reject/tempfail, e.g. { code: 554, enhanced: '5.7.1', text: 'Message refused: executable attachment' }. */
  reply?: { code: number; enhanced: string; text: string };
  /** Header fields to prepend to the message (mark), name → value, e.g. { 'X-Spam-Flag': 'YES' }. */
  headers?: [string, string][];
  /** Facts for later stages, delivery and the log: e.g. { spam: true, score: 7.1, virus: 'Eicar-Signature' }. */
  tags?: Record<string, unknown>;
  /** New Subject value (spam subject prefix). */
  subject?: string;
}

/** What a stage can see. Fields fill in as the SMTP session goes on. */
export interface FilterContext {
  /** Queue id (known from the data phase on; for earlier phases the session id). */
  id: string;
  client: { address: string; helo?: string; hostname?: string; user?: string; listener: 'smtp' | 'submission' | 'smtps' };
  /** MAIL FROM ('' for <>), from the mail phase on. */
  from?: string;
  /** RCPT TO addresses accepted so far (rcpt phase: the one being checked is `rcpt`). */
  recipients: string[];
  rcpt?: string;
  /** The whole message, CRLF, data phase only. */
  message?: Buffer;
  /** Tags set by earlier stages. */
  tags: Record<string, unknown>;
}

export interface FilterStage {
  name: string;
  phase: FilterPhase;
  check(ctx: FilterContext): Promise<FilterVerdict>;
}

export const ACCEPT: FilterVerdict = { action: 'accept' };
