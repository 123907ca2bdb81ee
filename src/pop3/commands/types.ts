import type { Pop3Session, Pop3State } from '../session.js';

/** One POP3 command (STYLE.md "One file per command"): the states it is valid in and its handler. */
export interface Pop3Command {
  name: string;
  states: readonly Pop3State[];
  run(session: Pop3Session, args: string): Promise<void> | void;
}

export const AUTHORIZATION = ['authorization'] as const;
export const TRANSACTION = ['transaction'] as const;
export const ANY_STATE = ['authorization', 'transaction'] as const;

/** RFC 2595 §2: "[AUTH]" (RFC 3206) refusal of credentials on a connection without TLS. */
export const NEED_TLS = '[AUTH] Plaintext authentication disallowed on non-secure connections; use STLS first';
