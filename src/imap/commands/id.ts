/** ID (RFC 2971): we tell our name; the client's parameters are logged (useful when a client misbehaves). */
import { bad, expectArgs, type ImapCommand } from '../command.js';
import { tokenText } from '../parser.js';

export const id: ImapCommand = {
  names: ['ID'],
  states: ['not-authenticated', 'authenticated', 'selected'],
  async handle(session, cmd) {
    expectArgs(cmd, 1);
    const arg = cmd.args[0];
    const params: Record<string, string | null> = {};
    if (arg.type === 'list') {
      if (arg.items.length % 2 || arg.items.length > 60) throw bad('Invalid ID parameters');
      for (let i = 0; i < arg.items.length; i += 2) {
        const v = arg.items[i + 1];
        params[tokenText(arg.items[i]) ?? ''] = v.type === 'atom' && v.value.toUpperCase() === 'NIL' ? null : (tokenText(v) ?? null);
      }
    } else if (!(arg.type === 'atom' && arg.value.toUpperCase() === 'NIL')) throw bad('Invalid ID parameters');
    session.deps.log.debug({ client: session.client, id: params }, 'imap client id');
    session.untagged('ID', ['name', 'postern']);
  },
};
