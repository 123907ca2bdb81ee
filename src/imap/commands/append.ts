/**
 * APPEND (RFC 3501 §6.3.11) with UIDPLUS APPENDUID (RFC 4315). The literal's size was checked against APPENDLIMIT
 * before the continuation; the message is stored with CRLF line ends only (DESIGN.md §6). Over quota is
 * `NO [OVERQUOTA]` (RFC 9208 §5.3), a missing folder `NO [TRYCREATE]`.
 */
import { bad, flagList, mailboxName, no, type ImapCommand } from '../command.js';
import { encodeBinaryParts } from '../binary.js';
import { parseImapDate } from '../response.js';
import { tokenText } from '../parser.js';

export function toCrlf(buf: Buffer): Buffer {
  if (!buf.includes(0x0a) && !buf.includes(0x0d)) return buf;
  const text = buf.toString('latin1').replace(/\r\n|\r|\n/g, '\r\n');
  return Buffer.from(text, 'latin1');
}

export const append: ImapCommand = {
  names: ['APPEND'],
  states: ['authenticated', 'selected'],
  async handle(session, cmd) {
    if (cmd.args.length < 2 || cmd.args.length > 4) throw bad('Wrong number of arguments for APPEND');
    const name = mailboxName(cmd.args[0]);
    const message = cmd.args[cmd.args.length - 1];
    if (message.type !== 'string') throw bad('Expected message literal');
    let flags: string[] = [];
    let date: Date | undefined;
    for (const t of cmd.args.slice(1, -1)) {
      if (t.type === 'list') flags = flagList(t).filter((f) => f !== '\\Recent');
      else {
        const text = tokenText(t) ?? '';
        date = parseImapDate(text, true);
        if (!date) throw bad('Invalid date-time');
      }
    }
    if (message.value.length > session.deps.appendLimit) throw no('Message too large', 'TOOBIG');
    if (message.value.length === 0) throw no('Empty message');
    const ref = session.resolve(name);
    const result = await session.deps.mailbox.append(ref.owner, ref.folder, toCrlf(encodeBinaryParts(message.value)), flags, date);
    if (session.selected?.name === name) session.checkExists = true;
    return { code: `APPENDUID ${result.uidValidity} ${result.uid}`, text: 'APPEND completed' };
  },
};
