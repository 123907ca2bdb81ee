/** The interpreter (src/sieve) as ManageSieve's checker: compile() for PUTSCRIPT/CHECKSCRIPT, its extensions, limits. */
import { compile, SIEVE_EXTENSIONS } from '../sieve/index.js';
import type { SieveChecker } from './session.js';

/** Pigeonhole's sieve_max_redirects default; the delivery agent runs scripts with the same limit. */
export const DEFAULT_MAX_REDIRECTS = 4;

export function interpreterChecker(opts: { maxScriptBytes?: number; maxRedirects?: number } = {}): SieveChecker {
  return {
    check(source) {
      const result = compile(source, opts.maxScriptBytes && opts.maxScriptBytes > 0 ? { maxScriptBytes: opts.maxScriptBytes } : {});
      return result.ok ? { ok: true } : { ok: false, errors: result.errors };
    },
    extensions: [...SIEVE_EXTENSIONS],
    maxRedirects: opts.maxRedirects ?? DEFAULT_MAX_REDIRECTS,
  };
}
