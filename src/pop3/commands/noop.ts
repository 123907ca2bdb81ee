import { TRANSACTION, type Pop3Command } from './types.js';

/** RFC 1939 §5 NOOP. */
export const noop: Pop3Command = {
  name: 'NOOP',
  states: TRANSACTION,
  run(s) {
    s.ok();
  },
};
