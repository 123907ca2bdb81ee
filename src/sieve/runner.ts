/**
 * The interpreter at delivery: compiles a script (cached by content, so an edited script is compiled again at its
 * next message and an unchanged one never), runs it on the message with the limits of config `sieve`, and maps its
 * actions onto what delivery carries out (src/sieve/delivery.ts). Any error is thrown: delivery then keeps the
 * message (RFC 5228 §2.10.6) and logs why.
 */
import { createHash } from 'node:crypto';
import type { z } from 'zod';
import type { Logger } from '../lib/logger.js';
import type { sieveDeliverySchema } from './config.js';
import type { PlanAction, ScriptRunner } from './delivery.js';
import { applyEditedHeaders, buildSieveMessage, compile, execute, type CompiledScript, type SieveAction } from './index.js';
import { readGlobalInclude, readPersonalInclude } from './scripts.js';

type SieveConfig = z.output<typeof sieveDeliverySchema>;

/** Compiled scripts kept, by the hash of their text. */
const CACHE_MAX = 1000;

export class ScriptCompileError extends Error {
  constructor(path: string, errors: { line: number; column: number; message: string }[]) {
    super(`${path}: ${errors.map((e) => `line ${e.line} column ${e.column}: ${e.message}`).join('; ')}`);
    this.name = 'ScriptCompileError';
  }
}

export function makeScriptRunner(config: SieveConfig, _log: Logger): ScriptRunner {
  const cache = new Map<string, CompiledScript>();
  const compiled = (path: string, text: string): CompiledScript => {
    const key = createHash('sha256').update(text).digest('hex');
    const hit = cache.get(key);
    if (hit) {
      // Map order is insertion order: re-inserting makes this the most recently used.
      cache.delete(key);
      cache.set(key, hit);
      return hit;
    }
    const r = compile(text);
    if (!r.ok) throw new ScriptCompileError(path, r.errors);
    cache.set(key, r.script);
    if (cache.size > CACHE_MAX) cache.delete(cache.keys().next().value!);
    return r.script;
  };

  return async (input) => {
    const script = compiled(input.path, input.text);
    const raw = input.message;
    const result = await execute(script, buildSieveMessage(raw, { from: input.envelope.from, to: input.envelope.to }), {
      mailboxExists: (name) => input.folderExists(name),
      loadInclude: (name, where) => (where === 'global' ? readGlobalInclude(config.globalDir, name) : readPersonalInclude(input.user.home, name)),
      duplicateSeen: (id, seconds) => input.duplicateSeen(id, seconds),
      now: input.now,
      limits: { maxActions: config.maxActions, maxRedirects: config.maxRedirects, maxRunMs: config.maxRunMs },
    });
    const edited = (headers: { name: string; value: string }[] | undefined) => (headers ? applyEditedHeaders(raw, headers) : undefined);
    const actions: PlanAction[] = result.actions.map((a: SieveAction): PlanAction => {
      switch (a.type) {
        case 'keep':
          return { type: 'keep', flags: a.flags, message: edited(a.headers) };
        case 'fileinto':
          return { type: 'fileinto', mailbox: a.mailbox, flags: a.flags, create: a.create, copy: a.copy, message: edited(a.headers) };
        case 'redirect':
          return { type: 'redirect', address: a.address, copy: a.copy, message: edited(a.headers) };
        case 'reject':
          return { type: 'reject', reason: a.reason, ereject: a.ereject };
        case 'discard':
          return { type: 'discard' };
        case 'vacation':
          return {
            type: 'vacation',
            reason: a.reason,
            handle: a.handle,
            seconds: a.periodSeconds,
            addresses: a.addresses,
            mime: a.mime,
            ...(a.subject !== undefined ? { subject: a.subject } : {}),
            ...(a.from !== undefined ? { from: a.from } : {}),
          };
      }
    });
    // The interpreter adds the implicit keep as the last action when nothing cancelled it (RFC 5228 §2.10.2). For
    // a before script that keep is not its own decision: it is left to the scripts after it (Pigeonhole's
    // multiscript runs the next script instead), and delivery adds it at the end if no script cancelled it.
    let implicitKeep = false;
    if (input.kind === 'before') {
      const last = actions[actions.length - 1];
      const cancels = actions.some((a) => a.type === 'fileinto' || a.type === 'discard' || a.type === 'reject' || (a.type === 'redirect' && !a.copy));
      const keeps = actions.filter((a) => a.type === 'keep').length;
      if (last?.type === 'keep' && keeps === 1 && !cancels && (last.flags ?? []).length === 0) {
        actions.pop();
        implicitKeep = true;
      }
    }
    return {
      actions,
      implicitKeep,
      ...(result.editedHeaders ? { message: applyEditedHeaders(raw, result.editedHeaders) } : {}),
      duplicateIds: result.duplicateIds.map((d) => ({ id: d.id, seconds: d.seconds })),
    };
  };
}
