-- The mailbox registry on PostgreSQL (issue 16): the truth of which store directory holds the mailbox of which AD
-- object, shared by the nodes (src/state/postgres/mailbox-registry.ts). Each node keeps a copy in the mailboxes
-- table of its settings.db (schema/migrations/003-mailbox-owners.sql), which the store reads synchronously; the
-- columns it copies have the same names, values and meaning here (text ISO times, held_settings JSON text).
-- Applied by src/state/postgres/pool.ts inside a transaction: no BEGIN/COMMIT here.
CREATE SEQUENCE mailboxes_rev;

CREATE TABLE mailboxes (
  guid          text PRIMARY KEY CHECK (guid = lower(guid) AND guid <> ''),
  dir           text NOT NULL CHECK (dir LIKE 'users/%'),
  login         text NOT NULL,
  created_at    text NOT NULL,
  seen_at       text NOT NULL,
  orphaned_at   text,
  held_settings text CHECK (held_settings IS NULL OR held_settings::jsonb IS NOT NULL),
  -- Bumped (from mailboxes_rev, under the registry's advisory lock, so in commit order) by every change: a node
  -- re-reads only the rows above the last rev it applied.
  rev           bigint NOT NULL,
  -- An erase in progress: the node that claimed it and when. Restore refuses such a row, and a second erase waits
  -- for the claim to expire (a node killed mid-erase), so two nodes never erase twice or restore what is erased.
  erasing_by    text,
  erasing_at    timestamptz,
  -- Erased: the row stays as a tombstone (so the nodes' incremental re-read sees the erase and drops their copy);
  -- its directory is free again and the GUID can be registered anew.
  erased_at     timestamptz
);
-- One live mailbox per directory (the SQLite copy's UNIQUE(dir)); tombstones do not hold theirs.
CREATE UNIQUE INDEX mailboxes_dir ON mailboxes (dir) WHERE erased_at IS NULL;
CREATE INDEX mailboxes_rev_idx ON mailboxes (rev);
