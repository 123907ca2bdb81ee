import { TRANSACTION, type Pop3Command } from './types.js';

/** RFC 1939 §5 LIST [msg]. */
export const list: Pop3Command = {
  name: 'LIST',
  states: TRANSACTION,
  async run(s, args) {
    const drop = s.maildrop!;
    if (args.trim() !== '') {
      const hit = drop.get(args.trim());
      if ('error' in hit) return s.err(hit.error);
      return s.ok(`${hit.n} ${hit.message.size}`);
    }
    const { count, octets } = drop.totals();
    // One write for the whole listing: a 100,000-message maildrop is one buffer, not 100,000 socket writes.
    const body = drop.live().map(({ n, message }) => `${n} ${message.size}\r\n`).join('') + '.\r\n';
    await s.sendMultiline(`+OK ${count} messages (${octets} octets)`, Buffer.from(body));
  },
};
