import { dotStuff } from '../dot-stuff.js';
import { TRANSACTION, type Pop3Command } from './types.js';

/** RFC 1939 §5 RETR. Like Dovecot, a retrieved message becomes \Seen, so IMAP shows it read. */
export const retr: Pop3Command = {
  name: 'RETR',
  states: TRANSACTION,
  async run(s, args) {
    const drop = s.maildrop!;
    const hit = drop.get(args.trim());
    if ('error' in hit) return s.err(hit.error);
    let message: Buffer;
    try {
      message = await s.ctx.mailbox.readMessage(drop.owner, 'INBOX', hit.message.uid);
    } catch (err) {
      s.log.warn({ err, user: s.user, uid: hit.message.uid }, 'pop3: message vanished');
      return s.err('message was removed by another session');
    }
    await s.sendMultiline(`+OK ${hit.message.size} octets`, dotStuff(message));
    await s.ctx.mailbox.storeFlags(drop.owner, 'INBOX', [hit.message.uid], 'add', ['\\Seen']).catch((err: unknown) => {
      s.log.warn({ err, user: s.user, uid: hit.message.uid }, 'pop3: could not set \\Seen');
    });
  },
};
