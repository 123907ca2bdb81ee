import { TRANSACTION, type Pop3Command } from './types.js';

/** RFC 1939 §7 UIDL [msg]: `<UIDVALIDITY>.<UID>` of INBOX, the same identity IMAP shows. */
export const uidl: Pop3Command = {
  name: 'UIDL',
  states: TRANSACTION,
  async run(s, args) {
    const drop = s.maildrop!;
    if (args.trim() !== '') {
      const hit = drop.get(args.trim());
      if ('error' in hit) return s.err(hit.error);
      return s.ok(`${hit.n} ${drop.uidl(hit.message)}`);
    }
    const body = drop.live().map(({ n, message }) => `${n} ${drop.uidl(message)}\r\n`).join('') + '.\r\n';
    await s.sendMultiline('+OK unique-id listing follows', Buffer.from(body));
  },
};
