-- The mail side of the cluster state (issue 16): POP3 maildrop locks shared by the nodes, and the folder index.
-- Numbered 050 to leave room for the other state migrations; applied by src/state/postgres/pool.ts in a transaction.
CREATE TABLE pop3_maildrop_locks (
  maildrop   text PRIMARY KEY,          -- ownerLabel, lower case (pop3/session.ts)
  node       text NOT NULL,             -- the node holding it
  token      text NOT NULL UNIQUE,      -- one per POP3 session
  expires_at timestamptz NOT NULL       -- the lease: free once past
);

-- The IMAP/POP3 index of every folder (src/state/postgres/mail-index.ts), the PostgreSQL twin of the SQLite
-- postern-index.db (src/store/folder-index.ts). `key` is the folder's Maildir path relative to the mail root.
-- Changes to a folder lock its row (SELECT … FOR UPDATE): UIDNEXT and MODSEQ move in the same transaction as the
-- rows, so two nodes never hand out one UID twice (RFC 3501 §2.3.1.1) nor one MODSEQ twice (RFC 7162 §3.1.1).
CREATE TABLE mail_folders (
  id            bigserial PRIMARY KEY,
  key           text NOT NULL UNIQUE,
  uidvalidity   bigint NOT NULL CHECK (uidvalidity > 0),
  uidnext       bigint NOT NULL,
  modseq        bigint NOT NULL,
  vanishedfloor bigint NOT NULL,
  firstrecent   bigint NOT NULL DEFAULT 1,
  uidlist       text NOT NULL DEFAULT '',   -- the dovecot-uidlist state the rows follow
  dirs          text NOT NULL DEFAULT ''    -- new/ and cur/ as last found matching the rows
);
CREATE TABLE mail_messages (
  folder        bigint NOT NULL REFERENCES mail_folders (id) ON DELETE CASCADE,
  uid           bigint NOT NULL,
  base          text NOT NULL,
  name          text NOT NULL,
  size          bigint NOT NULL,
  internal_date bigint NOT NULL,
  keywords      text NOT NULL DEFAULT '',
  modseq        bigint NOT NULL,
  save_date     bigint,
  envelope      jsonb,
  bodystructure jsonb,
  headers       jsonb,                      -- SEARCH header fields, [key, value, …]
  PRIMARY KEY (folder, uid),
  UNIQUE (folder, base)
);
CREATE TABLE mail_expunged (
  folder        bigint NOT NULL REFERENCES mail_folders (id) ON DELETE CASCADE,
  uid           bigint NOT NULL,
  modseq        bigint NOT NULL,
  PRIMARY KEY (folder, uid)
);
CREATE INDEX mail_expunged_modseq ON mail_expunged (folder, modseq);
