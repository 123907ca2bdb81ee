import { SieveStorageError, type SieveStorageCode } from '../../sieve/storage.js';
import type { Token } from '../parser.js';
import type { ResponseCode } from '../response.js';
import type { ManageSieveSession, ManageSieveState } from '../session.js';

/** One ManageSieve command (STYLE.md "One file per command"): the states it is valid in and its handler. */
export interface ManageSieveCommand {
  name: string;
  states: readonly ManageSieveState[];
  run(session: ManageSieveSession, args: Token[]): Promise<void> | void;
}

export const NON_AUTHENTICATED = ['non-authenticated'] as const;
export const AUTHENTICATED = ['authenticated'] as const;
export const ANY_STATE = ['non-authenticated', 'authenticated'] as const;

/**
 * A NO answer thrown by a handler (RFC 5804 §1.2). `bad` marks a malformed command, which counts towards the
 * limit of invalid commands of a session.
 */
export class SieveNo extends Error {
  constructor(
    message: string,
    readonly code?: ResponseCode,
    readonly bad = false,
  ) {
    super(message);
  }
}

export function badArgs(message: string): SieveNo {
  return new SieveNo(message, undefined, true);
}

export function expectArgs(args: Token[], min: number, max = min): void {
  if (args.length < min) throw badArgs('Too few arguments');
  if (args.length > max) throw badArgs('Too many arguments');
}

const UTF8 = new TextDecoder('utf-8', { fatal: true });

/** A string argument as text: RFC 5804 §4 strings are UTF-8; invalid UTF-8 is refused, not repaired. */
export function stringArg(tok: Token | undefined, what: string): string {
  if (tok?.kind === 'too-large') throw new SieveNo(`The ${what} is too long`, 'QUOTA/MAXSIZE');
  if (tok?.kind !== 'string') throw badArgs(`Expected the ${what} as a string`);
  try {
    return UTF8.decode(tok.value);
  } catch {
    throw badArgs(`The ${what} is not valid UTF-8`);
  }
}

/** RFC 5804 §1.3 code of a storage refusal; a bad name is a plain NO. */
export function storageNo(err: unknown): unknown {
  if (!(err instanceof SieveStorageError)) return err;
  const codes: Record<SieveStorageCode, ResponseCode | undefined> = {
    NONEXISTENT: 'NONEXISTENT',
    ALREADYEXISTS: 'ALREADYEXISTS',
    ACTIVE: 'ACTIVE',
    QUOTA: 'QUOTA',
    'QUOTA/MAXSCRIPTS': 'QUOTA/MAXSCRIPTS',
    'QUOTA/MAXSIZE': 'QUOTA/MAXSIZE',
    BADNAME: undefined,
  };
  const text = err.message.charAt(0).toUpperCase() + err.message.slice(1);
  return new SieveNo(text, codes[err.code]);
}

/** Runs a storage call, turning its refusals into NO answers with their response codes. */
export async function storage<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    throw storageNo(err);
  }
}
