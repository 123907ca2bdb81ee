/** The Sieve interpreter (RFC 5228 and extensions): compile() checks a script, execute() runs it on a message. */
export * from './types.js';
