/**
 * NOTIFY (RFC 5465): the client names the mailboxes it cares about and the events it wants to hear of, and the
 * server tells it without being asked — for the selected mailbox as EXISTS / EXPUNGE / FETCH (at once, not only at
 * the next command), for the others as untagged STATUS (message events) and LIST (MailboxName, SubscriptionChange).
 *
 * Supported events: MessageNew (with fetch-att for the selected mailbox), MessageExpunge, FlagChange, MailboxName,
 * SubscriptionChange. AnnotationChange, MailboxMetadataChange and ServerMetadataChange need ANNOTATE / METADATA,
 * which we do not have: asking for them is NO [BADEVENT (...)] with the events we do support (§5, §8 BADEVENT).
 *
 * When a mailbox matches several filters, the most specific one decides (mailboxes, then the longest subtree, then
 * subscribed, inboxes, personal), so "(personal (MessageNew MessageExpunge)) (mailboxes Junk NONE)" means "all but
 * Junk". The selected mailbox is decided only by selected / selected-delayed (§6.1) and gets no STATUS (its EXISTS
 * and EXPUNGE say it all); without a selected filter it is reported as RFC 3501 says, at command completion.
 *
 * Changes come from the store's in-process hubs: folder changes (watch), folder list and subscription changes
 * (watchMailboxes). Notifications found while a command runs are sent before its tagged response; between
 * commands they are sent at once. A client that does not read them would make us buffer without bound: past
 * NOTIFY_BACKLOG_BYTES of unsent output the session says [NOTIFICATIONOVERFLOW] and acts as after NOTIFY NONE (§5.8).
 */
import type { FolderChange, FolderState, MailboxListChange } from '../store/mailbox.js';
import { bad, mailboxName, no, sameOwner, SHARED_PREFIX, type NameMode } from './command.js';
import type { ImapSession, MailboxRef } from './connection.js';
import { parseFetchAtts, type FetchAtt, type Token } from './parser.js';
import { encodeMailbox } from './response.js';

export type NotifyEvent = 'MessageNew' | 'MessageExpunge' | 'FlagChange' | 'MailboxName' | 'SubscriptionChange';

const EVENTS = new Map<string, NotifyEvent>(
  (['MessageNew', 'MessageExpunge', 'FlagChange', 'MailboxName', 'SubscriptionChange'] as const).map((e) => [e.toUpperCase(), e]),
);
/** RFC 5465 §5.6 / §5.7 / RFC 5464: events of extensions this server does not have. */
const UNSUPPORTED = new Set(['ANNOTATIONCHANGE', 'MAILBOXMETADATACHANGE', 'SERVERMETADATACHANGE']);
const MESSAGE_EVENTS: NotifyEvent[] = ['MessageNew', 'MessageExpunge', 'FlagChange'];

/** Unsent output past which notifications overflow (RFC 5465 §5.8). */
export const NOTIFY_BACKLOG_BYTES = 4 * 1024 * 1024;

export type NotifyFilter =
  | { kind: 'selected'; delayed: boolean }
  | { kind: 'inboxes' }
  | { kind: 'personal' }
  | { kind: 'subscribed' }
  | { kind: 'subtree'; names: string[] }
  | { kind: 'mailboxes'; names: string[] };

export interface EventGroup {
  filter: NotifyFilter;
  /** Empty for "NONE": nothing is reported for these mailboxes. */
  events: Set<NotifyEvent>;
  /** MessageNew's fetch-att (selected / selected-delayed only): sent as FETCH after the EXISTS. */
  fetch?: FetchAtt[];
}

export interface NotifySpec {
  status: boolean;
  groups: EventGroup[];
}

function atomOf(t: Token | undefined): string | undefined {
  return t?.type === 'atom' ? t.value : undefined;
}

/** one-or-more-mailbox = mailbox / "(" mailbox *(SP mailbox) ")" */
function mailboxes(t: Token | undefined, mode?: NameMode): string[] {
  if (!t) throw bad('Expected mailboxes');
  const items = t.type === 'list' ? t.items : [t];
  if (!items.length) throw bad('Expected mailboxes');
  return items.map((i) => mailboxName(i, mode));
}

function parseEvents(t: Token | undefined, selected: boolean): { events: Set<NotifyEvent>; fetch?: FetchAtt[] } {
  if (atomOf(t)?.toUpperCase() === 'NONE') return { events: new Set() };
  if (!t || t.type !== 'list' || !t.items.length) throw bad('Expected a list of events or NONE');
  const events = new Set<NotifyEvent>();
  const unsupported: string[] = [];
  let fetch: FetchAtt[] | undefined;
  for (let i = 0; i < t.items.length; i++) {
    const name = atomOf(t.items[i])?.toUpperCase();
    if (name === undefined) throw bad('Invalid event');
    if (UNSUPPORTED.has(name)) {
      unsupported.push(name);
      continue;
    }
    const ev = EVENTS.get(name);
    if (!ev) throw bad(`Unknown event ${atomOf(t.items[i])}`);
    events.add(ev);
    if (ev === 'MessageNew' && t.items[i + 1]?.type === 'list') {
      // RFC 5465 §5.2: fetch-att only where FETCH responses can be sent, the selected mailbox.
      if (!selected) throw bad('MessageNew with fetch attributes is only for selected / selected-delayed');
      try {
        fetch = parseFetchAtts(t.items[++i]);
      } catch (err) {
        throw bad((err as Error).message);
      }
    }
  }
  if (unsupported.length) throw new BadEvent();
  return { events, fetch };
}

/** Raised for events we cannot report; answered NO [BADEVENT (events we support)] (RFC 5465 §5, §8). */
class BadEvent extends Error {}

/** `NOTIFY NONE` → null; `NOTIFY SET [STATUS] event-group *(SP event-group)` → the spec. */
export function parseNotify(args: Token[], mode?: NameMode): NotifySpec | null {
  const verb = atomOf(args[0])?.toUpperCase();
  if (verb === 'NONE') {
    if (args.length !== 1) throw bad('NOTIFY NONE takes no arguments');
    return null;
  }
  if (verb !== 'SET') throw bad('Expected NOTIFY SET or NOTIFY NONE');
  let rest = args.slice(1);
  const status = atomOf(rest[0])?.toUpperCase() === 'STATUS';
  if (status) rest = rest.slice(1);
  const groups: EventGroup[] = [];
  const seen = new Set<string>();
  try {
    for (const g of rest) {
      if (g.type !== 'list' || g.items.length < 2) throw bad('Expected an event group');
      const kind = atomOf(g.items[0])?.toLowerCase();
      let filter: NotifyFilter;
      let eventsAt = 1;
      switch (kind) {
        case 'selected':
        case 'selected-delayed':
          filter = { kind: 'selected', delayed: kind === 'selected-delayed' };
          break;
        case 'inboxes':
        case 'personal':
        case 'subscribed':
          filter = { kind };
          break;
        case 'subtree':
        case 'mailboxes':
          filter = { kind, names: mailboxes(g.items[1], mode) };
          eventsAt = 2;
          break;
        default:
          throw bad(`Unknown NOTIFY filter ${atomOf(g.items[0]) ?? ''}`);
      }
      if (g.items.length !== eventsAt + 1) throw bad('Invalid event group');
      // One event group per filter; selected and selected-delayed are the same filter (Dovecot: "Duplicate").
      const key = filter.kind === 'subtree' || filter.kind === 'mailboxes' ? `${filter.kind}\0${filter.names.join('\0')}` : filter.kind;
      if (seen.has(key)) throw bad(`Duplicate ${filter.kind} filter`);
      seen.add(key);
      groups.push({ filter, ...parseEvents(g.items[eventsAt], filter.kind === 'selected') });
    }
  } catch (err) {
    if (err instanceof BadEvent) throw no('Unsupported NOTIFY events', `BADEVENT (${[...EVENTS.values()].join(' ')})`);
    throw err;
  }
  return { status, groups };
}

interface Snapshot {
  messages: number;
  uidNext: number;
  uidValidity: number;
  unseen: number;
  modseq: number;
}

interface Watched {
  name: string;
  ref: MailboxRef;
  group: EventGroup;
  last?: Snapshot;
  unwatch: () => void;
}

function snapshotOf(state: FolderState): Snapshot {
  return {
    messages: state.messages.length,
    uidNext: state.uidNext,
    uidValidity: state.uidValidity,
    unseen: state.messages.filter((m) => !m.flags.includes('\\Seen')).length,
    modseq: state.modseq,
  };
}

function eventOf(change: FolderChange): NotifyEvent {
  return change.kind === 'exists' ? 'MessageNew' : change.kind === 'expunge' ? 'MessageExpunge' : 'FlagChange';
}

function listLine(mode: { utf8: boolean }, flags: string[], name: string, oldName?: string): Buffer {
  const parts = [Buffer.from(`* LIST (${flags.join(' ')}) "/" `), encodeMailbox(name, mode)];
  // RFC 5465 §5.4 with RFC 5258 §3.5's OLDNAME extended data item.
  if (oldName !== undefined) parts.push(Buffer.from(' ("OLDNAME" ('), encodeMailbox(oldName, mode), Buffer.from('))'));
  parts.push(Buffer.from('\r\n'));
  return Buffer.concat(parts);
}

/** One session's NOTIFY SET: the watched mailboxes and what is waiting to be said. */
export class NotifyState {
  private readonly watched = new Map<string, Watched>();
  private subscriptions = new Set<string>();
  private unwatchList?: () => void;
  /** Mailboxes with a STATUS to send. */
  private readonly dirty = new Set<string>();
  /** LIST responses (MailboxName, SubscriptionChange) to send. */
  private lines: Buffer[] = [];
  private rewatchNeeded = false;
  /** Mailboxes created since the last rewatch: what reached them before they were watched is news too. */
  private readonly created = new Set<string>();
  private stopped = false;

  constructor(
    private readonly session: ImapSession,
    readonly spec: NotifySpec,
  ) {}

  /** The selected / selected-delayed group, which decides for the selected mailbox (RFC 5465 §6.1). */
  get selectedGroup(): EventGroup | undefined {
    return this.spec.groups.find((g) => g.filter.kind === 'selected');
  }

  /** Whether a change of the selected mailbox is to be told at once rather than at the next command. */
  wantsNow(change: FolderChange): boolean {
    return this.selectedGroup?.events.has(eventOf(change)) === true;
  }

  get pending(): boolean {
    return this.dirty.size > 0 || this.lines.length > 0 || this.rewatchNeeded;
  }

  /** The group that decides for a mailbox other than the selected one; undefined when none matches. */
  groupFor(name: string): EventGroup | undefined {
    const groups = this.spec.groups;
    const exact = groups.find((g) => g.filter.kind === 'mailboxes' && g.filter.names.includes(name));
    if (exact) return exact;
    let best: EventGroup | undefined;
    let bestLen = -1;
    for (const g of groups) {
      if (g.filter.kind !== 'subtree') continue;
      for (const root of g.filter.names) {
        if ((name === root || name.startsWith(root + '/')) && root.length > bestLen) {
          best = g;
          bestLen = root.length;
        }
      }
    }
    if (best) return best;
    const shared = name === SHARED_PREFIX || name.startsWith(SHARED_PREFIX + '/');
    const subscribed = groups.find((g) => g.filter.kind === 'subscribed');
    if (subscribed && this.subscriptions.has(name)) return subscribed;
    const inboxes = groups.find((g) => g.filter.kind === 'inboxes');
    // RFC 5465 §6.2 inboxes: where new mail is delivered — INBOX, and the INBOX of each shared group ("Shared/<g>").
    if (inboxes && (name === 'INBOX' || (shared && name.split('/').length === 2))) return inboxes;
    // §6.3 personal: the user's own namespace, not the shared one.
    if (!shared) return groups.find((g) => g.filter.kind === 'personal');
    return undefined;
  }

  private isSelected(ref: MailboxRef): boolean {
    const sel = this.session.selected;
    return !!sel && sel.folder === ref.folder && sameOwner(sel.owner, ref.owner);
  }

  /** Sets up the watches; with STATUS, sends the status of every watched mailbox now (RFC 5465 §3.1). */
  async start(): Promise<void> {
    const store = this.session.deps.mailbox;
    const owner = this.session.owner!;
    if (store.watchMailboxes) this.unwatchList = store.watchMailboxes(owner, (c) => this.listChanged(c));
    await this.rewatch(this.spec.status);
  }

  stop(): void {
    this.stopped = true;
    this.unwatchList?.();
    for (const w of this.watched.values()) w.unwatch();
    this.watched.clear();
    this.dirty.clear();
    this.lines = [];
  }

  /** The client names of every mailbox this user can see: the own folders and the shared groups' folders. */
  private async allNames(): Promise<MailboxRef[]> {
    const s = this.session;
    const store = s.deps.mailbox;
    const out: MailboxRef[] = (await store.listFolders(s.owner!)).map((f) => ({ name: f.name, owner: s.owner!, folder: f.name }));
    for (const group of s.sharedGroups) {
      for (const f of await store.listFolders({ kind: 'shared', group })) {
        out.push({ name: s.sharedName(group, f.name), owner: { kind: 'shared', group }, folder: f.name, shared: group });
      }
    }
    return out;
  }

  /** Brings the watched set in line with the folders and subscriptions there are now. */
  private async rewatch(sendStatus: boolean): Promise<void> {
    this.rewatchNeeded = false;
    const s = this.session;
    const store = s.deps.mailbox;
    if (this.spec.groups.some((g) => g.filter.kind === 'subscribed')) this.subscriptions = new Set(await store.subscriptions(s.owner!));
    const wanted = new Map<string, { ref: MailboxRef; group: EventGroup }>();
    for (const ref of await this.allNames()) {
      const group = this.groupFor(ref.name);
      if (group && MESSAGE_EVENTS.some((e) => group.events.has(e))) wanted.set(ref.name, { ref, group });
    }
    if (this.stopped) return;
    for (const [name, w] of this.watched) {
      if (wanted.get(name)?.group === w.group) continue;
      w.unwatch();
      this.watched.delete(name);
      this.dirty.delete(name);
    }
    for (const [name, { ref, group }] of wanted) {
      if (this.watched.has(name)) continue;
      const w: Watched = { name, ref, group, unwatch: () => {} };
      w.unwatch = store.watch(ref.owner, ref.folder, (change) => {
        if (this.stopped || this.watched.get(name) !== w || !group.events.has(eventOf(change))) return;
        this.dirty.add(name);
        this.session.notificationsPending();
      });
      this.watched.set(name, w);
      let state: FolderState;
      try {
        state = await store.openFolder(ref.owner, ref.folder);
      } catch {
        continue;
      }
      if (this.stopped) return;
      w.last = snapshotOf(state);
      // A mailbox created after NOTIFY SET is watched only once its LIST went out: a message another session put in
      // it meanwhile raised no event here. Measured from the empty mailbox it was, it is reported (RFC 5465 §5.2).
      if (this.created.delete(name) && w.last.messages > 0) {
        w.last = { ...w.last, messages: 0, unseen: 0, uidNext: 1 };
        this.dirty.add(name);
      }
      if (sendStatus && !this.isSelected(ref)) this.writeStatus(name, this.itemsFor(group, undefined, w.last));
    }
  }

  /** HIGHESTMODSEQ belongs to CONDSTORE (RFC 7162 §3.1.1 / RFC 5465 §5.3): only when the server announces it. */
  private get modseqs(): boolean {
    return this.session.capabilities().includes('CONDSTORE');
  }

  /**
   * The STATUS items for a change from `last` to `now`: those the group's events are about that changed (all of them
   * when there is no `last`), and UIDVALIDITY whenever it changed (RFC 5465 §5.2–5.3; Dovecot sends the same items).
   */
  private itemsFor(group: EventGroup, last: Snapshot | undefined, now: Snapshot): string[] {
    const ev = group.events;
    const want = new Set<string>();
    if (MESSAGE_EVENTS.some((e) => ev.has(e))) ['MESSAGES', 'UIDNEXT', 'UIDVALIDITY', 'UNSEEN'].forEach((i) => want.add(i));
    if (ev.has('FlagChange') && this.modseqs) want.add('HIGHESTMODSEQ');
    const value: Record<string, number> = { MESSAGES: now.messages, UIDNEXT: now.uidNext, UIDVALIDITY: now.uidValidity, UNSEEN: now.unseen, HIGHESTMODSEQ: now.modseq };
    const before: Record<string, number> | undefined = last && { MESSAGES: last.messages, UIDNEXT: last.uidNext, UIDVALIDITY: last.uidValidity, UNSEEN: last.unseen, HIGHESTMODSEQ: last.modseq };
    const out: string[] = [];
    for (const item of ['MESSAGES', 'UIDNEXT', 'UIDVALIDITY', 'UNSEEN', 'HIGHESTMODSEQ']) {
      if (!want.has(item)) continue;
      if (before && before[item] === value[item]) continue;
      out.push(`${item} ${value[item]}`);
    }
    return out;
  }

  private writeStatus(name: string, items: string[]): void {
    if (!items.length) return;
    this.session.write(Buffer.concat([Buffer.from('* STATUS '), encodeMailbox(name, this.session), Buffer.from(` (${items.join(' ')})\r\n`)]));
  }

  /** A folder of the user was created, deleted, renamed or (un)subscribed, by this session or another. */
  private listChanged(c: MailboxListChange): void {
    if (this.stopped) return;
    const has = (name: string, ev: NotifyEvent) => this.groupFor(name)?.events.has(ev) === true;
    if (c.kind === 'subscription') {
      if (c.subscribed) this.subscriptions.add(c.name);
      else this.subscriptions.delete(c.name);
      // RFC 5465 §5.5: a LIST with or without \Subscribed.
      if (has(c.name, 'SubscriptionChange')) this.lines.push(listLine(this.session, c.subscribed ? ['\\Subscribed'] : [], c.name));
    } else if (c.kind === 'created') {
      this.created.add(c.name);
      if (has(c.name, 'MailboxName')) this.lines.push(listLine(this.session, [], c.name));
    } else if (c.kind === 'deleted') {
      this.created.delete(c.name);
      // RFC 5465 §5.4: a deleted mailbox is a LIST with \NonExistent (RFC 5258).
      if (has(c.name, 'MailboxName')) this.lines.push(listLine(this.session, ['\\NonExistent'], c.name));
    } else if (has(c.name, 'MailboxName') || has(c.oldName, 'MailboxName')) {
      this.lines.push(listLine(this.session, [], c.name, c.oldName));
    }
    this.rewatchNeeded = true;
    this.session.notificationsPending();
  }

  /** Sends what is waiting: LIST lines first (a new mailbox before its status), then STATUS of changed mailboxes. */
  async pump(): Promise<void> {
    if (this.stopped) return;
    for (const line of this.lines.splice(0)) this.session.write(line);
    if (this.rewatchNeeded) await this.rewatch(false);
    const store = this.session.deps.mailbox;
    for (const name of [...this.dirty]) {
      this.dirty.delete(name);
      const w = this.watched.get(name);
      if (!w || this.isSelected(w.ref)) continue;
      let state: FolderState;
      try {
        state = await store.openFolder(w.ref.owner, w.ref.folder);
      } catch {
        continue;
      }
      if (this.stopped || this.watched.get(name) !== w) continue;
      const now = snapshotOf(state);
      this.writeStatus(name, this.itemsFor(w.group, w.last, now));
      w.last = now;
    }
  }
}
