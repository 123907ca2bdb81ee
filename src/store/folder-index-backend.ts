/**
 * The folder index as an interface with more than one backend (issue 16): the embedded SQLite file per folder
 * (folder-index.ts, the default) and PostgreSQL for nodes of a cluster (state/postgres/mail-index.ts), where UIDs,
 * flags, keywords, MODSEQs and the expunge history must be one truth for every node.
 *
 * Asynchronous, because a network database is: FolderIndex is synchronous (better-sqlite3) and is wrapped here
 * without a change. The same contract tests (test/integration/mail-index-contract.test.ts) run against both.
 */
import { FolderIndex, type IndexRow, type NewRow } from './folder-index.js';
import type { SearchHeaders } from './header-fields.js';

export type { IndexRow, NewRow };

export interface IndexChanges {
  /** Empties the index under a new UIDVALIDITY (dovecot-uidlist says another one). */
  reset?: { uidValidity: number };
  remove?: number[];
  update?: { uid: number; name: string; keywords: string }[];
  /** Added with the UID given, or the next UIDs in the order given. */
  add?: NewRow[];
  /** Raise UIDNEXT to at least this. */
  uidNext?: number;
  uidlistSignature?: string;
}

export interface FolderMeta {
  uidValidity: number;
  uidNext: number;
  /** RFC 7162 HIGHESTMODSEQ. */
  modseq: number;
  /** RFC 7162 §3.2.5.2: expunges at or below this MODSEQ may be forgotten. */
  vanishedFloor: number;
  uidlistSignature: string;
  dirsSignature: string;
}

/** One folder's index. Every change is one transaction; every touched row gets the folder's next MODSEQ. */
export interface FolderIndexBackend {
  meta(): Promise<FolderMeta>;
  rows(): Promise<IndexRow[]>;
  row(uid: number): Promise<IndexRow | undefined>;
  uidOfBase(base: string): Promise<number | undefined>;
  /** Returns the UIDs of `add`, in order: allocated once, whichever node asks (UIDNEXT moves in the transaction). */
  apply(changes: IndexChanges): Promise<number[]>;
  /** UIDs expunged after `modseq`, ascending; undefined when the history does not reach back that far. */
  vanishedSince(modseq: number): Promise<number[] | undefined>;
  allSearchHeaders(): Promise<ReadonlyMap<number, SearchHeaders>>;
  searchHeaders(uid: number): Promise<SearchHeaders | undefined>;
  setSearchHeaders(entries: Iterable<[number, SearchHeaders]>): Promise<void>;
  setDirsSignature(v: string): Promise<void>;
  /** RFC 3501 §2.3.2: the first UID not yet claimed as \Recent; claiming moves it up to `claimUpTo`. */
  firstRecentUid(claimUpTo?: number): Promise<number>;
  cached(uid: number): Promise<{ envelope?: unknown; bodystructure?: unknown }>;
  setCached(uid: number, data: { envelope?: unknown; bodystructure?: unknown }): Promise<void>;
  close(): Promise<void>;
}

/** The SQLite index of one folder (its Maildir `dir`) behind the interface. */
export class SqliteFolderIndexBackend implements FolderIndexBackend {
  private constructor(readonly index: FolderIndex) {}

  static open(dir: string, opts?: Parameters<typeof FolderIndex.open>[1]): SqliteFolderIndexBackend {
    return new SqliteFolderIndexBackend(FolderIndex.open(dir, opts));
  }

  async meta(): Promise<FolderMeta> {
    const i = this.index;
    return { uidValidity: i.uidValidity, uidNext: i.uidNext, modseq: i.modseq, vanishedFloor: i.vanishedFloor, uidlistSignature: i.uidlistSignature, dirsSignature: i.dirsSignature };
  }
  async rows(): Promise<IndexRow[]> {
    return this.index.rows();
  }
  async row(uid: number): Promise<IndexRow | undefined> {
    return this.index.row(uid);
  }
  async uidOfBase(base: string): Promise<number | undefined> {
    return this.index.uidOfBase(base);
  }
  async apply(changes: IndexChanges): Promise<number[]> {
    return this.index.apply(changes);
  }
  async vanishedSince(modseq: number): Promise<number[] | undefined> {
    return this.index.vanishedSince(modseq);
  }
  async allSearchHeaders(): Promise<ReadonlyMap<number, SearchHeaders>> {
    return this.index.allSearchHeaders();
  }
  async searchHeaders(uid: number): Promise<SearchHeaders | undefined> {
    return this.index.searchHeaders(uid);
  }
  async setSearchHeaders(entries: Iterable<[number, SearchHeaders]>): Promise<void> {
    this.index.setSearchHeaders(entries);
  }
  async setDirsSignature(v: string): Promise<void> {
    this.index.dirsSignature = v;
  }
  async firstRecentUid(claimUpTo?: number): Promise<number> {
    return this.index.firstRecentUid(claimUpTo);
  }
  async cached(uid: number): Promise<{ envelope?: unknown; bodystructure?: unknown }> {
    return this.index.cached(uid);
  }
  async setCached(uid: number, data: { envelope?: unknown; bodystructure?: unknown }): Promise<void> {
    this.index.setCached(uid, data);
  }
  async close(): Promise<void> {
    this.index.close();
  }
}
