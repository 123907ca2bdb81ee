import { TRANSACTION, type Pop3Command } from './types.js';

/** RFC 1939 §5 RSET: unmarks every message marked by DELE. */
export const rset: Pop3Command = {
  name: 'RSET',
  states: TRANSACTION,
  run(s) {
    const drop = s.maildrop!;
    drop.deleted.clear();
    const { count, octets } = drop.totals();
    s.ok(`maildrop has ${count} messages (${octets} octets)`);
  },
};
