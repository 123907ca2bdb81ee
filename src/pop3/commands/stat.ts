import { TRANSACTION, type Pop3Command } from './types.js';

/** RFC 1939 §5 STAT: messages marked deleted are not counted. */
export const stat: Pop3Command = {
  name: 'STAT',
  states: TRANSACTION,
  run(s) {
    const { count, octets } = s.maildrop!.totals();
    s.ok(`${count} ${octets}`);
  },
};
