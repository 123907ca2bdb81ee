import { ANY_STATE, type Pop3Command } from './types.js';

/**
 * RFC 1939 §6 QUIT. In TRANSACTION it enters the UPDATE state: the messages marked by DELE are removed, and only
 * then is the answer +OK. A connection that drops without QUIT removes nothing.
 */
export const quit: Pop3Command = {
  name: 'QUIT',
  states: ANY_STATE,
  async run(s) {
    const drop = s.maildrop;
    if (s.state !== 'transaction' || !drop) {
      s.ok(`${s.ctx.hostname} POP3 closing`);
      return s.quit('quit');
    }
    const uids = [...drop.deleted].map((n) => drop.messages[n - 1]!.uid);
    try {
      const removed = uids.length ? await s.ctx.mailbox.expunge(drop.owner, 'INBOX', uids) : [];
      s.ok(`${s.ctx.hostname} POP3 closing (${removed.length} message${removed.length === 1 ? '' : 's'} deleted)`);
      s.quit('quit');
    } catch (err) {
      s.log.error({ err, user: s.user }, 'pop3: expunge at QUIT failed');
      s.err('[SYS/TEMP] some deleted messages not removed');
      s.quit('quit, expunge failed');
    }
  },
};
