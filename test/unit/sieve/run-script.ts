/**
 * Helpers of the Sieve unit tests: compile a script (failing the test with its errors if it does not compile) and
 * run it on a message given as lines, with an in-memory environment.
 */
import assert from 'node:assert/strict';
import { buildSieveMessage, compile, execute, type ExecuteResult, type SieveEnvelope, type SieveEnvironment } from '../../../src/sieve/index.ts';

export function mail(lines: string[]): Buffer {
  return Buffer.from(lines.join('\r\n'), 'utf8');
}

export interface RunOptions {
  envelope?: Partial<SieveEnvelope>;
  env?: Partial<SieveEnvironment>;
  mailboxes?: string[];
  scripts?: Record<string, string>;
  seen?: Set<string>;
}

export async function run(script: string, message: Buffer | string[], opts: RunOptions = {}): Promise<ExecuteResult> {
  const r = compile(script);
  if (!r.ok) assert.fail(`script does not compile: ${JSON.stringify(r.errors)}`);
  const raw = Array.isArray(message) ? mail(message) : message;
  const msg = buildSieveMessage(raw, { from: 'sender@example.org', to: 'me@example.com', ...opts.envelope });
  const env: SieveEnvironment = {
    mailboxExists: (name) => (opts.mailboxes ?? ['INBOX']).includes(name),
    loadInclude: (name, location) => opts.scripts?.[`${location}:${name}`] ?? null,
    duplicateSeen: (id) => opts.seen?.has(id) ?? false,
    now: new Date('2026-12-01T12:00:00Z'),
    zone: '+0000',
    ...opts.env,
  };
  return execute(r.script, msg, env);
}

/** The actions in a compact form for assertions: "keep", "fileinto:spam", "redirect:a@b", ... */
export function summary(r: ExecuteResult): string[] {
  return r.actions.map((a) => {
    switch (a.type) {
      case 'keep':
        return a.flags.length ? `keep[${a.flags.join(' ')}]` : 'keep';
      case 'fileinto':
        return `fileinto:${a.mailbox}${a.copy ? ':copy' : ''}${a.create ? ':create' : ''}${a.flags.length ? `[${a.flags.join(' ')}]` : ''}`;
      case 'redirect':
        return `redirect:${a.address}${a.copy ? ':copy' : ''}`;
      case 'reject':
        return `${a.ereject ? 'ereject' : 'reject'}:${a.reason}`;
      case 'discard':
        return 'discard';
      case 'vacation':
        return `vacation:${a.reason}`;
    }
  });
}

/** The first compile error of a script that must not compile. */
export function compileError(script: string): { line: number; column: number; message: string } {
  const r = compile(script);
  if (r.ok) assert.fail('script compiled but should not have');
  return r.errors[0];
}
