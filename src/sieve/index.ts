/**
 * The Sieve interpreter (RFC 5228 and the extensions of SIEVE_EXTENSIONS): compile() checks a script (ManageSieve
 * PUTSCRIPT/CHECKSCRIPT report its errors with line and column), execute() runs a compiled script on a message.
 */
export * from './types.js';
export { compile, SIEVE_EXTENSIONS, DEFAULT_MAX_SCRIPT_BYTES } from './validate.js';
export { execute, DEFAULT_LIMITS } from './interpreter.js';
export { buildSieveMessage, applyEditedHeaders } from './message.js';
