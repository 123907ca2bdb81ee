/**
 * The mail side of a node of a cluster (issue 16, state postgres), started by src/server.ts: folder changes to and
 * from the other nodes (mail-events.ts) and the POP3 maildrop locks they share (maildrop-locks.ts). With the
 * embedded sqlite state there is nothing to start: one node's hubs and lock table are all there is.
 */
import type { Logger } from '../../lib/logger.js';
import type { MailboxOwner } from '../../store/types.js';
import { PgMaildropLocks } from './maildrop-locks.js';
import { PgMailEvents } from './mail-events.js';
import type { Queryable } from './queryable.js';

export type ClusterChange = ['folder' | 'list', string, unknown];

export interface ClusterMail {
  readonly locks: PgMaildropLocks;
  readonly events: PgMailEvents;
  /** A delivery made on this node: nodes whose sessions watch the folder sync it. */
  delivered(owner: MailboxOwner, folder: string): void;
  /** Changes made in this node's IMAP worker processes. */
  publish(batch: ClusterChange[]): void;
  close(): Promise<void>;
}

export async function startClusterMail(opts: {
  db: Queryable;
  /** The state store's URL: the LISTEN connection is opened from it. */
  url: string;
  node: string;
  mailRoot: string;
  log: Logger;
  /** A delivery on another node: this node's notifyDelivered (and its IMAP workers'). */
  onDelivered(owner: MailboxOwner, folder: string): void;
  /** Changes from other nodes, for this node's IMAP workers. */
  onRemote?(batch: ClusterChange[]): void;
}): Promise<ClusterMail> {
  const log = opts.log.child({ component: 'cluster' });
  const events = new PgMailEvents({ url: opts.url, db: opts.db, node: opts.node, mailRoot: opts.mailRoot, log, onDelivered: opts.onDelivered, onRemote: opts.onRemote });
  // Not awaited: LISTEN retries in the background; the start does not wait for a PostgreSQL the state store has
  // just reached anyway.
  void events.start();
  const locks = new PgMaildropLocks({ db: opts.db, node: opts.node, log });
  return {
    locks,
    events,
    delivered: (owner, folder) => events.delivered(owner, folder),
    publish: (batch) => events.publish(batch),
    async close() {
      locks.close();
      await events.close();
    },
  };
}
