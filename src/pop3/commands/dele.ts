import { TRANSACTION, type Pop3Command } from './types.js';

/** RFC 1939 §5 DELE: only marks; QUIT removes. */
export const dele: Pop3Command = {
  name: 'DELE',
  states: TRANSACTION,
  run(s, args) {
    const drop = s.maildrop!;
    const hit = drop.get(args.trim());
    if ('error' in hit) return s.err(hit.error);
    drop.deleted.add(hit.n);
    s.ok(`message ${hit.n} deleted`);
  },
};
