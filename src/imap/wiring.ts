/**
 * What an IMAP listener needs from the core, built the same way in the primary process and in an IMAP worker
 * process (imap.workers, src/imap/workers.ts): both open the same store, settings and directory.
 */
import type { LoadedConfig } from '../config/load.js';
import type { Core } from '../core.js';
import type { UserEntry } from '../directory/types.js';
import { openTrainingQueue, type TrainingLesson, type TrainingQueue } from '../filters/training-queue.js';
import type { Logger } from '../lib/logger.js';
import type { SessionRegistry } from '../lib/session-registry.js';
import type { TlsMaterial } from '../lib/tls.js';
import type { MaildirMailbox } from '../store/maildir-mailbox.js';
import type { UrlauthKeyStore } from '../store/urlauth-keys.js';
import type { ImapServerOptions } from './server.js';

export function imapDeps(parts: {
  config: LoadedConfig;
  core: Core;
  tls: TlsMaterial;
  mailbox: MaildirMailbox;
  urlauthKeys: UrlauthKeyStore;
  hostname: string;
  log: Logger;
  /** Open sessions by user, closed when AD takes a user's access away (directory/watch.ts). */
  sessions?: SessionRegistry;
  /** The Bayes training queue and a kick for this process's trainer (server.ts); a worker opens its own queue. */
  training?: { queue: TrainingQueue; queued(): void };
}): Omit<ImapServerOptions, 'port' | 'host' | 'secure'> {
  const { config, core, log } = parts;
  const { settings, directory } = core;
  const queue = parts.training?.queue ?? openTrainingQueue(config, core.state.pg);
  const held: TrainingLesson[] = [];
  let retrying: NodeJS.Timeout | undefined;
  // The MOVE is answered before its lesson is queued (spam-training.ts): a queue that cannot take it (PostgreSQL
  // away) must not lose it. Held in memory (at most 1000, oldest dropped) and queued when the store answers again;
  // only a node that dies meanwhile loses them.
  const queueLesson = async (lesson: TrainingLesson): Promise<void> => {
    try {
      await queue.add([lesson]);
      parts.training?.queued();
    } catch (err) {
      if (held.length >= 1000) held.shift();
      held.push(lesson);
      log.warn({ component: 'imap', err: (err as Error).message, held: held.length }, 'imap: spam training queue unavailable; the lesson is held until it answers');
      retrying ??= setInterval(() => {
        const batch = held.splice(0);
        queue.add(batch).then(
          () => {
            clearInterval(retrying);
            retrying = undefined;
            parts.training?.queued();
          },
          () => held.unshift(...batch),
        );
      }, 2000);
      retrying.unref();
    }
  };
  return {
    tls: parts.tls,
    urlauthKeys: parts.urlauthKeys,
    // Logins only of accounts that have a mailbox now (mailbox.enabledGroup, not orphaned: issue 13).
    auth: core.mailboxAuth,
    ...(parts.sessions ? { sessions: parts.sessions } : {}),
    mailbox: parts.mailbox,
    settings,
    hostname: parts.hostname,
    log,
    // RFC 2221: users of a domain whose mailboxes are on another IMAP server are referred there at login.
    imapReferral: (domain: string) => settings.getDomain(domain)?.imapReferral,
    // groupDelivery: shared makes mail-enabled groups shared folders, shown to their members (nested membership).
    sharedGroups:
      config.directory.groupDelivery === 'shared'
        ? async (user: UserEntry) => (await directory.groupsOf(user)).filter((g) => g.mailEnabled).map((g) => g.name)
        : undefined,
    // The seed: moving into/out of Junk teaches SpamAssassin; if a group "spamtrainers" exists, only its members.
    learn: async (user: UserEntry, kind: 'spam' | 'ham', message: Buffer) => {
      const trainers = await directory.findGroup('spamtrainers');
      if (trainers && !(await directory.groupsOf(user)).some((g) => g.dn.toLowerCase() === trainers.dn.toLowerCase())) return false;
      // Queued, told to spamd by a trainer (src/filters/training-queue.ts): a spamd that is down delays the lesson.
      await queueLesson({ login: user.login, kind, message });
      return true;
    },
  };
}
