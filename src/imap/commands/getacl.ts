/**
 * GETACL (RFC 4314 §3.3): the rights as AD membership gives them: the owner on a personal mailbox, the group
 * ("$group", the RFC 4314 §2 convention for group identifiers) on a shared one.
 */
import { expectArgs, mailboxName, type ImapCommand } from '../command.js';
import { encodeMailbox, encodeString } from '../response.js';
import { MEMBER_RIGHTS, OWNER_RIGHTS } from './myrights.js';

export const getacl: ImapCommand = {
  names: ['GETACL'],
  states: ['authenticated', 'selected'],
  async handle(session, cmd) {
    expectArgs(cmd, 1);
    const name = mailboxName(cmd.args[0], session);
    const ref = session.resolve(name);
    await session.deps.mailbox.openFolder(ref.owner, ref.folder);
    const [identifier, rights] = ref.shared ? [`$${ref.shared}`, MEMBER_RIGHTS] : [session.user!.login, OWNER_RIGHTS];
    session.write(Buffer.concat([Buffer.from('* ACL '), encodeMailbox(name, session), Buffer.from(' '), encodeString(identifier), Buffer.from(` ${rights}\r\n`)]));
  },
};
