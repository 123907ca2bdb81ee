/**
 * LIST (RFC 3501 §6.3.8) with SPECIAL-USE flags (RFC 6154) and CHILDREN (RFC 3348), LIST-EXTENDED (RFC 5258) and
 * LIST-STATUS (RFC 5819). LSUB shares the matching and shows only subscribed folders.
 */
import type { FolderInfo } from '../../store/mailbox.js';
import { bad, SHARED_PREFIX, wireMailboxName, wireText, type ImapCommand, type NameMode } from '../command.js';
import type { ImapSession, MailboxRef } from '../connection.js';
import type { ParsedCommand, Token } from '../parser.js';
import { encodeMailbox } from '../response.js';
import { sendStatus, statusItems } from './status.js';

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

/**
 * A LIST reference or pattern: decoded like a mailbox name, but one that is not valid modified UTF-7 is kept as it is,
 * so it matches no folder and LIST answers OK with nothing (as Dovecot does), where SELECT of it is NO.
 */
function wirePattern(t: Token | undefined, what: string, mode: NameMode): string {
  const raw = wireText(t, what, mode);
  try {
    return wireMailboxName(raw, mode);
  } catch {
    return raw;
  }
}

interface ListOptions {
  /** RFC 5258 extended syntax (selection options, several patterns or RETURN): "" is then an ordinary pattern. */
  extended: boolean;
  subscribed: boolean;
  recursive: boolean;
  specialUse: boolean;
  returnSubscribed: boolean;
  /** RFC 5819 LIST-STATUS items. */
  status?: string[];
}

function optionNames(t: Token | undefined, what: string): string[] {
  if (!t || t.type !== 'list') throw bad(`Expected ${what}`);
  return t.items.map((i) => {
    if (i.type !== 'atom') throw bad(`Invalid ${what}`);
    return i.value.toUpperCase();
  });
}

/** LIST [(selection)] reference (pattern | (patterns)) [RETURN (options)] — RFC 5258 §3, RFC 5819, RFC 6154 §5. */
function parseListArgs(cmd: ParsedCommand, lsub: boolean, mode: NameMode & { rev2: boolean }): { reference: string; patterns: string[]; opts: ListOptions } {
  const args = [...cmd.args];
  const opts: ListOptions = { extended: false, subscribed: false, recursive: false, specialUse: false, returnSubscribed: false };
  if (!lsub && args[0]?.type === 'list') {
    opts.extended = true;
    const sel = optionNames(args.shift(), 'selection options');
    for (const o of sel) {
      if (o === 'SUBSCRIBED') opts.subscribed = true;
      else if (o === 'RECURSIVEMATCH') opts.recursive = true;
      else if (o === 'SPECIAL-USE') opts.specialUse = true;
      else if (o !== 'REMOTE') throw bad(`Unknown selection option ${o}`);
    }
    // RFC 5258 §3.1: RECURSIVEMATCH needs a selection option it can recurse on (REMOTE is not one).
    if (opts.recursive && !opts.subscribed && !opts.specialUse) throw bad('RECURSIVEMATCH needs another selection option');
  }
  if (args.length < 2) throw bad(`Wrong number of arguments for ${cmd.command}`);
  // RFC 3501 §5.1.3: names on the wire are modified UTF-7 (UTF-8 with UTF8=ACCEPT or IMAP4rev2); matching works on
  // the decoded names.
  const reference = wirePattern(args.shift(), 'reference', mode);
  const pat = args.shift()!;
  let patterns: string[];
  if (!lsub && pat.type === 'list') {
    opts.extended = true;
    patterns = pat.items.map((t) => wirePattern(t, 'pattern', mode));
    if (!patterns.length) throw bad('Expected patterns');
  } else patterns = [wirePattern(pat, 'pattern', mode)];
  if (args.length) {
    const kw = args.shift();
    if (lsub || kw?.type !== 'atom' || kw.value.toUpperCase() !== 'RETURN' || args.length !== 1) throw bad(`Wrong arguments for ${cmd.command}`);
    opts.extended = true;
    const ret = args.shift()!;
    if (ret.type !== 'list') throw bad('Expected return options');
    for (let k = 0; k < ret.items.length; k++) {
      const t = ret.items[k];
      const o = t.type === 'atom' ? t.value.toUpperCase() : '';
      if (o === 'SUBSCRIBED') opts.returnSubscribed = true;
      else if (o === 'STATUS') opts.status = statusItems(ret.items[++k], mode);
      // We send \HasChildren / \HasNoChildren and the special-use attributes always (RFC 3348, RFC 6154 §5.1).
      else if (o !== 'CHILDREN' && o !== 'SPECIAL-USE') throw bad(`Unknown return option ${o}`);
    }
  }
  return { reference, patterns, opts };
}

export async function listLike(session: ImapSession, cmd: ParsedCommand, lsub: boolean): Promise<void> {
  const { reference, patterns, opts } = parseListArgs(cmd, lsub, session);
  const verb = lsub ? 'LSUB' : 'LIST';
  if (!opts.extended && patterns[0] === '') {
    // RFC 3501 §6.3.8: an empty pattern asks for the hierarchy separator.
    session.untagged(`${verb} (\\Noselect) "/" ""`);
    return;
  }
  const res = patterns.map((p) => patternToRegExp(reference && !p.startsWith('/') ? `${reference.replace(/\/$/, '')}/${p}` : p));
  const matchAny = (name: string) => res.some((re) => matchesPattern(name, re));
  const send = async (name: string, flags: string[], childInfo = false, statusOf?: MailboxRef) => {
    const extra = childInfo ? ' ("CHILDINFO" ("SUBSCRIBED"))' : '';
    session.write(Buffer.concat([Buffer.from(`* ${verb} (${flags.join(' ')}) "/" `), encodeMailbox(name, session), Buffer.from(`${extra}\r\n`)]));
    // RFC 5819 §2: the STATUS of each selectable mailbox follows its LIST line.
    if (opts.status && statusOf) await sendStatus(session, name, statusOf, opts.status);
  };
  const owner = session.owner!;
  const folders: FolderInfo[] = await session.deps.mailbox.listFolders(owner);
  const exists = new Map(folders.map((f) => [f.name, f]));
  const wantSubs = lsub || opts.subscribed || opts.returnSubscribed;
  const subs = new Set(wantSubs ? await session.deps.mailbox.subscriptions(owner) : []);
  const childrenOf = (name: string) => folders.some((f) => f.name.startsWith(name + '/'));
  const markSubscribed = !lsub && (opts.subscribed || opts.returnSubscribed);

  // The mailboxes that meet the selection criteria (RFC 5258 §3): all, the subscribed ones (also those whose folder
  // is gone: \NonExistent), or those with a special use (RFC 6154 §5.2).
  const base = lsub || opts.subscribed ? [...subs] : opts.specialUse ? folders.filter((f) => f.specialUse).map((f) => f.name) : folders.map((f) => f.name);
  const inBase = new Set(base);
  const emitted = new Set<string>();
  for (const name of base) {
    if (!matchAny(name)) continue;
    const f = exists.get(name);
    const flags: string[] = [];
    if (!lsub) {
      if (f) flags.push(f.hasChildren ? '\\HasChildren' : '\\HasNoChildren');
      else flags.push('\\NonExistent', ...(childrenOf(name) ? ['\\HasChildren'] : []));
    }
    if (f?.specialUse) flags.push(f.specialUse);
    if (markSubscribed && subs.has(name)) flags.push('\\Subscribed');
    emitted.add(name);
    await send(name, flags, false, f ? session.resolve(name) : undefined);
  }
  // Parents that are not in the selection: RFC 3501 §6.3.8/§6.3.9 for a Maildir++ "a/b" without "a" (LIST) or
  // an unsubscribed "a" (LSUB) where "%" stops, so the client can still walk down; RFC 5258 §3.5 RECURSIVEMATCH for
  // a parent whose subscribed descendant the patterns do not list (CHILDINFO).
  for (const name of base) {
    const parts = name.split('/');
    for (let n = 1; n < parts.length; n++) {
      const parent = parts.slice(0, n).join('/');
      if (inBase.has(parent) || emitted.has(parent) || !matchAny(parent)) continue;
      if (lsub) {
        if (matchAny(name)) continue;
        emitted.add(parent);
        await send(parent, ['\\Noselect']);
      } else if (!opts.subscribed && !opts.specialUse) {
        emitted.add(parent);
        await send(parent, ['\\Noselect', '\\HasChildren', ...(markSubscribed && subs.has(parent) ? ['\\Subscribed'] : [])]);
      } else if (opts.recursive && opts.subscribed && !matchAny(name)) {
        emitted.add(parent);
        const f = exists.get(parent);
        const flags = f ? [f.hasChildren ? '\\HasChildren' : '\\HasNoChildren', ...(f.specialUse ? [f.specialUse] : [])] : ['\\NonExistent', '\\HasChildren'];
        await send(parent, flags, true, f ? session.resolve(parent) : undefined);
      }
    }
  }
  // The shared namespace: "Shared" itself cannot be selected; each group's INBOX is "Shared/<group>".
  if (!session.sharedGroups.length || opts.specialUse) return;
  if (!lsub && !opts.subscribed && matchAny(SHARED_PREFIX)) await send(SHARED_PREFIX, ['\\Noselect', '\\HasChildren']);
  for (const group of session.sharedGroups) {
    const shared: FolderInfo[] = await session.deps.mailbox.listFolders({ kind: 'shared', group });
    for (const f of shared) {
      if ((lsub || opts.subscribed) && !f.subscribed) continue;
      const name = session.sharedName(group, f.name);
      if (!res.some((re) => re.test(name))) continue;
      const children = f.name === 'INBOX' ? shared.length > 1 : f.hasChildren;
      const flags = lsub ? [] : [children ? '\\HasChildren' : '\\HasNoChildren'];
      if (markSubscribed && f.subscribed) flags.push('\\Subscribed');
      await send(name, flags, false, { name, owner: { kind: 'shared', group }, folder: f.name, shared: group });
    }
  }
}

/** The LIST attributes of one existing mailbox (CHILDREN, SPECIAL-USE), as LIST itself gives them. */
export async function mailboxAttributes(session: ImapSession, ref: MailboxRef): Promise<string[]> {
  const folders = await session.deps.mailbox.listFolders(ref.owner);
  const f = folders.find((x) => x.name === ref.folder);
  if (!f) return ['\\NonExistent'];
  const children = ref.shared && f.name === 'INBOX' ? folders.length > 1 : f.hasChildren;
  return [children ? '\\HasChildren' : '\\HasNoChildren', ...(!ref.shared && f.specialUse ? [f.specialUse] : [])];
}

/**
 * The untagged LIST an IMAP4rev2 SELECT, EXAMINE, CREATE and RENAME send about their mailbox (RFC 9051 §6.3.2,
 * §6.3.4, §6.3.6), with OLDNAME (§7.3.1) when the client wrote the name in a form that is not NFC and the mailbox
 * is known by its NFC form.
 */
export async function sendMailboxList(session: ImapSession, ref: MailboxRef, oldName?: string): Promise<void> {
  const flags = await mailboxAttributes(session, ref);
  const parts = [Buffer.from(`* LIST (${flags.join(' ')}) "/" `), encodeMailbox(ref.name, session)];
  if (oldName !== undefined) parts.push(Buffer.from(' ("OLDNAME" ('), encodeMailbox(oldName, session), Buffer.from('))'));
  parts.push(Buffer.from('\r\n'));
  session.write(Buffer.concat(parts));
}

export const list: ImapCommand = {
  names: ['LIST'],
  states: ['authenticated', 'selected'],
  handle: (session, cmd) => listLike(session, cmd, false),
};
