/**
 * LIST (RFC 3501 §6.3.8) with SPECIAL-USE flags (RFC 6154) and CHILDREN (RFC 3348). LSUB shares the matching and
 * shows only subscribed folders.
 */
import type { FolderInfo } from '../../store/mailbox.js';
import { astring, expectArgs, SHARED_PREFIX, wireMailboxName, type ImapCommand } from '../command.js';
import type { ImapSession } from '../connection.js';
import type { ParsedCommand } from '../parser.js';
import { encodeMailbox } from '../response.js';

/** RFC 3501 §6.3.8: "*" matches anything, "%" anything but the hierarchy separator. */
export function patternToRegExp(pattern: string): RegExp {
  let re = '';
  for (const c of pattern) {
    if (c === '*') re += '.*';
    else if (c === '%') re += '[^/]*';
    else re += c.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

export function matchesPattern(name: string, re: RegExp): boolean {
  // INBOX is case-insensitive, including as the first level of a pattern.
  if (name === 'INBOX' || name.startsWith('INBOX/')) return re.test(name) || re.test(name.replace(/^INBOX/, 'inbox')) || new RegExp(re.source, 'i').test(name);
  return re.test(name);
}

export async function listLike(session: ImapSession, cmd: ParsedCommand, lsub: boolean): Promise<void> {
  expectArgs(cmd, 2);
  const reference = wireMailboxName(astring(cmd.args[0], 'reference'));
  const pattern = wireMailboxName(astring(cmd.args[1], 'pattern'));
  const verb = lsub ? 'LSUB' : 'LIST';
  if (pattern === '') {
    // RFC 3501: an empty pattern asks for the hierarchy separator.
    session.untagged(`${verb} (\\Noselect) "/" ""`);
    return;
  }
  const full = reference && !pattern.startsWith('/') ? `${reference.replace(/\/$/, '')}/${pattern}` : pattern;
  const re = patternToRegExp(full);
  const send = (name: string, flags: string[]) =>
    session.write(Buffer.concat([Buffer.from(`* ${verb} (${flags.join(' ')}) "/" `), encodeMailbox(name), Buffer.from('\r\n')]));
  const folders: FolderInfo[] = await session.deps.mailbox.listFolders(session.owner!);
  for (const f of folders) {
    if (lsub && !f.subscribed) continue;
    if (!matchesPattern(f.name, re)) continue;
    const flags: string[] = [];
    if (!lsub) flags.push(f.hasChildren ? '\\HasChildren' : '\\HasNoChildren');
    if (f.specialUse) flags.push(f.specialUse);
    send(f.name, flags);
  }
  // The shared namespace: "Shared" itself cannot be selected; each group's INBOX is "Shared/<group>".
  if (!session.sharedGroups.length) return;
  if (!lsub && re.test(SHARED_PREFIX)) send(SHARED_PREFIX, ['\\Noselect', '\\HasChildren']);
  for (const group of session.sharedGroups) {
    const shared: FolderInfo[] = await session.deps.mailbox.listFolders({ kind: 'shared', group });
    for (const f of shared) {
      if (lsub && !f.subscribed) continue;
      const name = session.sharedName(group, f.name);
      if (!re.test(name)) continue;
      const children = f.name === 'INBOX' ? shared.length > 1 : f.hasChildren;
      send(name, lsub ? [] : [children ? '\\HasChildren' : '\\HasNoChildren']);
    }
  }
}

export const list: ImapCommand = {
  names: ['LIST'],
  states: ['authenticated', 'selected'],
  handle: (session, cmd) => listLike(session, cmd, false),
};
