/**
 * CANCELUPDATE (RFC 5267 §4.3): stops the updates of the SEARCH / SORT RETURN (UPDATE) commands with the given tags.
 * A tag that names no updating search is an error (as Dovecot answers); then none is cancelled, so the client knows
 * which updates still come.
 */
import { bad, no, type ImapCommand } from '../command.js';
import { tokenText } from '../parser.js';

export const cancelupdate: ImapCommand = {
  names: ['CANCELUPDATE'],
  states: ['selected'],
  async handle(session, cmd) {
    // cancelupdate = "CANCELUPDATE" 1*(SP quoted)
    if (!cmd.args.length) throw bad('CANCELUPDATE needs the tags of updating searches');
    // The RFC's tags are quoted; an atom names the same tag, and refusing it would help no one.
    const tags = cmd.args.map((t) => {
      const s = tokenText(t);
      if (s === undefined) throw bad('CANCELUPDATE tags are quoted strings');
      return s;
    });
    const contexts = session.selected!.contexts;
    const unknown = tags.find((t) => !contexts.has(t));
    if (unknown !== undefined) throw no(`Unknown tag ${JSON.stringify(unknown)}`);
    for (const t of tags) contexts.delete(t);
  },
};
