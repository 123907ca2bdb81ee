/** What PUTSCRIPT and CHECKSCRIPT share: the script argument and the interpreter's verdict on it. */
import type { Token } from '../parser.js';
import type { ManageSieveSession } from '../session.js';
import { badArgs, SieveNo } from './types.js';

const UTF8 = new TextDecoder('utf-8', { fatal: true });

/** The script argument as text; a literal past the size limit is NO (QUOTA/MAXSIZE), as the quota check says it. */
export function scriptArg(tok: Token | undefined): string {
  if (tok?.kind === 'too-large') throw new SieveNo(`Script too large (${tok.size} bytes)`, 'QUOTA/MAXSIZE');
  if (tok?.kind !== 'string') throw badArgs('Expected the script as a string');
  try {
    // RFC 5228 §2.1: a script is UTF-8.
    return UTF8.decode(tok.value);
  } catch {
    throw new SieveNo('The script is not valid UTF-8');
  }
}

/**
 * Compiles the script (RFC 5804 §2.6: the server MUST check the script and refuse one with errors). The refusal
 * names each error by line and column, e.g. `line 3, column 5: unknown command 'fileinot'`; several go on
 * separate lines (a literal, response.ts). Returns the warnings of a script that compiles.
 */
export function compileOrRefuse(s: ManageSieveSession, text: string): string[] {
  const result = s.ctx.sieve.check(text);
  if (result.ok) return result.warnings ?? [];
  const lines = result.errors.map((e) => `line ${e.line}, column ${e.column}: ${e.message}`);
  throw new SieveNo(lines.length ? lines.join('\r\n') : 'The script does not compile');
}
