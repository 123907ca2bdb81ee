/**
 * URLAUTH (RFC 4467) shared by GENURLAUTH, RESETKEY and URLFETCH: signing a URL rump with the owner's mailbox
 * access key (the INTERNAL mechanism, §7), and resolving a signed URL to the bytes it names, for whoever the access
 * identifier allows (§3, §6). Every way a URL can fail — unknown user, mailbox or message, wrong key, expired, not
 * for this session's user — ends the same way (`undefined`, URLFETCH's NIL), so a URL reveals nothing to someone
 * it does not authorise (RFC 4467 §10).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { UserEntry } from '../directory/types.js';
import { loginKey } from '../directory/types.js';
import { TempFailure } from '../lib/errors.js';
import { userOwner, type MailboxOwner } from '../store/types.js';
import type { UrlauthKeys } from '../store/urlauth-keys.js';
import type { MailboxAccess } from '../store/mailbox.js';
import { SHARED_PREFIX } from './command.js';
import { binaryTree } from './binary.js';
import { findPart, parseMime, bodystructure, type MimeNode } from './mime.js';
import { parseImapUrl, type ImapUrl } from './imap-url.js';
import { sectionData } from './commands/fetch.js';
import type { Value } from './response.js';

/** RFC 4467 §7: INTERNAL is the one mechanism every URLAUTH server has. */
export const URLAUTH_MECHANISMS = ['INTERNAL'];

/** What the fetch side needs: the store, the keys, and the directory to find the URL's owner. */
export interface UrlauthContext {
  mailbox: MailboxAccess;
  keys: UrlauthKeys;
  /** An enabled user by login; null for unknown or disabled (a disabled user's URLs stop working). */
  findUser: (login: string) => Promise<UserEntry | null>;
  resolveOwner: (user: UserEntry) => MailboxOwner;
  sharedGroups?: (user: UserEntry) => Promise<string[]>;
  /** Host names (lower case) that are this server. */
  hosts: (host: string) => boolean;
}

/** Who is asking: an IMAP user (URLFETCH) or the submission server acting for a user (BURL, `submit+`). */
export type UrlRequester = { kind: 'user'; user: UserEntry } | { kind: 'submit'; user: UserEntry };

/** RFC 4467 §7: the token is an HMAC of the rump under the mailbox access key; hex (enc-urlauth = 32*HEXDIG). */
export function urlauthToken(key: Buffer, rump: string): string {
  return createHmac('sha256', key).update(rump, 'utf8').digest('hex');
}

/** The key's owner: the user's own mailbox store, even for a folder of a shared group seen in their namespace. */
export function keyOwner(user: UserEntry): MailboxOwner {
  return userOwner(user);
}

/** A mailbox name in a user's namespace → whose store and which folder (as ImapSession.resolve does for a session). */
export async function resolveMailbox(ctx: Pick<UrlauthContext, 'resolveOwner' | 'sharedGroups'>, user: UserEntry, name: string): Promise<{ owner: MailboxOwner; folder: string } | undefined> {
  const prefix = SHARED_PREFIX + '/';
  if (ctx.sharedGroups && name.toLowerCase().startsWith(prefix.toLowerCase())) {
    const groups = await ctx.sharedGroups(user);
    const rest = name.slice(prefix.length);
    const slash = rest.indexOf('/');
    const groupPart = slash < 0 ? rest : rest.slice(0, slash);
    const group = groups.find((g) => g.toLowerCase() === groupPart.toLowerCase());
    if (groups.length && !group) return undefined;
    if (group) return { owner: { kind: 'shared', group }, folder: (slash < 0 ? '' : rest.slice(slash + 1)) || 'INBOX' };
  }
  return { owner: ctx.resolveOwner(user), folder: name };
}

/** RFC 4467 §3 / §6: whether the access identifier lets this requester fetch the URL. */
function allowed(url: ImapUrl, who: UrlRequester): boolean {
  const access = url.access!;
  switch (access.kind) {
    case 'anonymous':
      return true;
    // "authuser": any user who has authenticated to this server; a submission server is not one of them (§3).
    case 'authuser':
      return who.kind === 'user';
    case 'user':
      return who.kind === 'user' && sameLogin(who.user, access.user);
    // "submit+X": only the submission server, for X (RFC 4468 BURL); never an IMAP session.
    case 'submit':
      return who.kind === 'submit' && sameLogin(who.user, access.user);
  }
}

function sameLogin(user: UserEntry, login: string): boolean {
  return loginKey(user.login) === loginKey(login) || (user.userPrincipalName !== undefined && user.userPrincipalName.toLowerCase() === login.toLowerCase());
}

export interface UrlContent {
  /** BODY[section]<partial> as FETCH gives it. */
  raw: Buffer;
  tree: MimeNode;
  /** The part the section names (the whole message for none), or undefined for HEADER/TEXT-style sections. */
  part?: MimeNode;
  url: ImapUrl;
}

/**
 * Checks a full URL and reads the message it names; undefined for every failure. The message is read without
 * setting \Seen (RFC 4467 §6: URLFETCH does not change the message).
 */
export async function openUrl(ctx: UrlauthContext, url: ImapUrl, who: UrlRequester, now = new Date()): Promise<UrlContent | undefined> {
  try {
    if (!url.access || !url.token || !url.mechanism) return undefined;
    if (!URLAUTH_MECHANISMS.includes(url.mechanism)) return undefined;
    if (!ctx.hosts(url.host)) return undefined;
    if (url.expire && url.expire.getTime() <= now.getTime()) return undefined;
    if (!allowed(url, who)) return undefined;
    const owner = await ctx.findUser(url.user);
    if (!owner || !owner.enabled) return undefined;
    const where = await resolveMailbox(ctx, owner, url.mailbox);
    if (!where) return undefined;
    const state = await ctx.mailbox.openFolder(where.owner, where.folder);
    if (url.uidValidity !== undefined && url.uidValidity !== state.uidValidity) return undefined;
    const key = await ctx.keys.key(keyOwner(owner), url.mailbox, state.uidValidity, false);
    if (!key) return undefined;
    const expected = Buffer.from(urlauthToken(key, url.rump), 'hex');
    const given = Buffer.from(url.token, 'hex');
    if (expected.length !== given.length || !timingSafeEqual(expected, given)) return undefined;
    if (!state.messages.some((m) => m.uid === url.uid)) return undefined;
    const raw = await ctx.mailbox.readMessage(where.owner, where.folder, url.uid);
    const tree = parseMime(raw);
    const part = url.body.path.length ? findPart(tree, url.body.path) : tree;
    if (url.body.path.length && !part) return undefined;
    return { raw, tree, part: url.body.specifier === '' ? part : undefined, url };
  } catch (err) {
    // DESIGN.md §6 "temporary beats wrong": a directory that cannot answer is not an invalid URL.
    if (err instanceof TempFailure) throw err;
    return undefined;
  }
}

/**
 * RFC 5524 BODYPARTSTRUCTURE: the BODYSTRUCTURE of the part the URL names; with `binary` (BINARY asked too) its
 * sizes and line counts are those of the decoded data.
 */
export function bodyPartStructure(content: UrlContent, binary: boolean): Value | undefined {
  if (!content.part) return undefined;
  // BINARY of the whole message is the message as stored (binaryData), so only a part's sizes change.
  return bodystructure(binary && content.url.body.path.length ? binaryTree(content.part) : content.part, true);
}

/**
 * BURL (RFC 4468 §3): what the submission server sends for `BURL <url>` by `user` — the URL's section (and
 * partial) as URLFETCH would give it, fetched as "submit+<user>"; undefined for anything that does not resolve.
 */
export async function resolveBurl(ctx: UrlauthContext, url: string, user: UserEntry): Promise<Buffer | undefined> {
  let parsed: ImapUrl;
  try {
    parsed = parseImapUrl(url, 'full');
  } catch {
    return undefined;
  }
  const content = await openUrl(ctx, parsed, { kind: 'submit', user });
  if (!content) return undefined;
  return sectionData(content.raw, content.tree, { ...parsed.body, partial: parsed.partial });
}
