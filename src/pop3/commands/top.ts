import { dotStuff } from '../dot-stuff.js';
import { TRANSACTION, type Pop3Command } from './types.js';

/** RFC 1939 §7 TOP msg n: the header, the blank line and the first n lines of the body. Flags are untouched. */
export const top: Pop3Command = {
  name: 'TOP',
  states: TRANSACTION,
  async run(s, args) {
    const [msg = '', lines = '', ...extra] = args.trim().split(/ +/);
    if (extra.length || !/^\d{1,9}$/.test(lines)) return s.err('usage: TOP msg lines');
    const drop = s.maildrop!;
    const hit = drop.get(msg);
    if ('error' in hit) return s.err(hit.error);
    let message: Buffer;
    try {
      message = await s.ctx.mailbox.readMessage(drop.owner, 'INBOX', hit.message.uid);
    } catch (err) {
      s.log.warn({ err, user: s.user, uid: hit.message.uid }, 'pop3: message vanished');
      return s.err('message was removed by another session');
    }
    await s.sendMultiline('+OK top of message follows', dotStuff(message, { maxBodyLines: Number(lines) }));
  },
};
