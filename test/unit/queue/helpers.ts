/** Shared by the queue tests: temp spools, test envelopes, fake delivery agents and a small MIME reader for DSNs. */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Spool, type NewEnvelope, type SpoolOptions } from '../../../src/queue/spool.ts';
import type { QueueEnvelope, QueueRecipient } from '../../../src/queue/types.ts';

export function tempDir(t: { after(fn: () => void): void }, prefix = 'postern-queue-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export async function tempSpool(t: { after(fn: () => void): void }, options?: SpoolOptions): Promise<{ dir: string; spool: Spool }> {
  const dir = tempDir(t);
  const spool = new Spool(dir, options);
  await spool.init();
  return { dir, spool };
}

export function message(subject = 'Hello', body = 'Hi there.'): Buffer {
  return Buffer.from(
    `From: Alice <alice@corp.example>\r\nTo: bob@partner.example\r\nSubject: ${subject}\r\n` +
      `Message-ID: <m1@corp.example>\r\nDate: Tue, 01 Jul 2025 10:00:00 +0000\r\n\r\n${body}\r\n`,
  );
}

export function rcpt(address: string, extra: Partial<QueueRecipient> = {}): QueueRecipient {
  return { address, origin: 'rcpt', state: 'pending', attempts: 0, ...extra };
}

export function envelope(from: string, ...to: (string | QueueRecipient)[]): NewEnvelope {
  return {
    from,
    recipients: to.map((r) => (typeof r === 'string' ? rcpt(r) : r)),
    client: { address: '192.0.2.10', helo: 'client.example', listener: 'smtp' },
  };
}

export type Outcome = { state: 'delivered' } | { state: 'pending' | 'failed'; result: string; status: string; remoteMta?: string };

/** A delivery agent whose verdict per recipient is given by `decide`; records every call. */
export function fakeAgent(decide: (r: QueueRecipient, e: QueueEnvelope, call: number) => Outcome | Promise<Outcome>) {
  const calls: { envelope: QueueEnvelope; message: Buffer; at: number }[] = [];
  return {
    calls,
    async deliver(e: QueueEnvelope, m: Buffer): Promise<QueueRecipient[]> {
      calls.push({ envelope: structuredClone(e), message: m, at: Date.now() });
      const n = calls.filter((c) => c.envelope.id === e.id).length;
      const out: QueueRecipient[] = [];
      for (const r of e.recipients) {
        if (r.state !== 'pending') {
          out.push(r);
          continue;
        }
        const o = await decide(r, e, n);
        if (o.state === 'delivered') out.push({ ...r, state: 'delivered', attempts: r.attempts + 1, lastResult: '250 2.0.0 ok', deliveredAt: new Date().toISOString() });
        else out.push({ ...r, state: o.state, attempts: r.attempts + 1, lastResult: o.result, status: o.status, remoteMta: o.remoteMta });
      }
      return out;
    },
  };
}

export interface MimePart {
  headers: Map<string, string>;
  body: string;
}

/** Splits a message into its header fields (lower-case names, unfolded) and body; CRLF is required. */
export function parseEntity(text: string): MimePart {
  const end = text.indexOf('\r\n\r\n');
  const head = end < 0 ? text : text.slice(0, end);
  const body = end < 0 ? '' : text.slice(end + 4);
  const headers = new Map<string, string>();
  for (const line of head.replace(/\r\n[ \t]+/g, ' ').split('\r\n')) {
    const i = line.indexOf(':');
    if (i > 0 && !headers.has(line.slice(0, i).toLowerCase())) headers.set(line.slice(0, i).toLowerCase(), line.slice(i + 1).trim());
  }
  return { headers, body };
}

/** The parts of a multipart entity. */
export function parseMultipart(entity: MimePart): MimePart[] {
  const m = /boundary="?([^";]+)"?/.exec(entity.headers.get('content-type') ?? '');
  if (!m) throw new Error('no boundary');
  const delimiter = `\r\n--${m[1]}`;
  const body = '\r\n' + entity.body;
  const chunks = body.split(delimiter);
  // chunks[0] is the preamble; the last starts with "--" (the close delimiter).
  if (!chunks[chunks.length - 1].startsWith('--')) throw new Error('no close delimiter');
  return chunks.slice(1, -1).map((c) => parseEntity(c.replace(/^[ \t]*\r\n/, '')));
}

/** RFC 3464 fields: groups of "Name: value" separated by empty lines (per-message, then per recipient). */
export function parseDeliveryStatus(body: string): Map<string, string>[] {
  return body
    .replace(/\r\n[ \t]+/g, ' ')
    .split(/\r\n\r\n/)
    .filter((g) => g.trim())
    .map((g) => {
      const m = new Map<string, string>();
      for (const line of g.split('\r\n')) {
        const i = line.indexOf(':');
        if (i > 0) m.set(line.slice(0, i).toLowerCase(), line.slice(i + 1).trim());
      }
      return m;
    });
}

export function until(cond: () => boolean | Promise<boolean>, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const start = Date.now();
  return new Promise((resolve, reject) => {
    const tick = async () => {
      if (await cond()) return resolve();
      if (Date.now() - start > timeoutMs) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(tick, 10);
    };
    void tick();
  });
}

/** The message and envelope files in a queue directory (tmp/ and the server lock files left out). */
export function queueFiles(dir: string): string[] {
  return readdirSync(dir).filter((n) => /\.(eml|json)$/.test(n)).sort();
}
