/**
 * The admin API's side of settings/references.ts: a request that names something the directory does not know
 * (a Bcc target, a pseudonym's user or group, a user's login) is answered 400 `{field, message}` unless it carries
 * `?force=true`; then it goes through, the reason is logged and sent back in a `Warning` header (RFC 7234 §5.5,
 * code 299 "miscellaneous persistent warning").
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { checkReferences, type Reference } from '../settings/references.js';
import type { AdminDeps } from './types.js';

export function forced(req: FastifyRequest): boolean {
  const f = (req.query as { force?: string } | undefined)?.force;
  return f === 'true' || f === '1' || f === 'yes';
}

export async function checkApiReferences(deps: AdminDeps, req: FastifyRequest, reply: FastifyReply, refs: Reference[]): Promise<void> {
  if (!refs.length) return;
  const warnings = await checkReferences({ directory: deps.directory, settings: deps.settings }, refs, {
    force: forced(req),
    forceHint: 'repeat the request with ?force=true',
  });
  if (!warnings.length) return;
  deps.log.warn({ warnings: warnings.map((w) => w.message), by: req.admin, url: req.url }, 'admin: accepted with force');
  reply.header('warning', warnings.map((w) => `299 postern ${JSON.stringify(w.message)}`).join(', '));
}
