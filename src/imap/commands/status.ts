/** STATUS (RFC 3501 §6.3.10): counters of a folder without selecting it. */
import { bad, expectArgs, mailboxName, type ImapCommand } from '../command.js';
import { encodeMailbox } from '../response.js';

export const status: ImapCommand = {
  names: ['STATUS'],
  states: ['authenticated', 'selected'],
  async handle(session, cmd) {
    expectArgs(cmd, 2);
    const name = mailboxName(cmd.args[0]);
    const items = cmd.args[1];
    if (items.type !== 'list' || !items.items.length) throw bad('Expected status items');
    const ref = session.resolve(name);
    const state = await session.deps.mailbox.openFolder(ref.owner, ref.folder);
    const out: string[] = [];
    for (const t of items.items) {
      const item = t.type === 'atom' ? t.value.toUpperCase() : '';
      if (item === 'MESSAGES') out.push(`MESSAGES ${state.messages.length}`);
      else if (item === 'RECENT') out.push('RECENT 0');
      else if (item === 'UIDNEXT') out.push(`UIDNEXT ${state.uidNext}`);
      else if (item === 'UIDVALIDITY') out.push(`UIDVALIDITY ${state.uidValidity}`);
      else if (item === 'UNSEEN') out.push(`UNSEEN ${state.messages.filter((m) => !m.flags.includes('\\Seen')).length}`);
      else if (item === 'SIZE') out.push(`SIZE ${state.messages.reduce((n, m) => n + m.size, 0)}`);
      else throw bad(`Unknown status item ${item}`);
    }
    session.write(Buffer.concat([Buffer.from('* STATUS '), encodeMailbox(name), Buffer.from(` (${out.join(' ')})\r\n`)]));
  },
};
