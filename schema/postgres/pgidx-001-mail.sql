-- The mail side of the cluster state (issue 16): POP3 maildrop locks shared by the nodes.
-- Idempotent (IF NOT EXISTS): every node applies it at start.
CREATE TABLE IF NOT EXISTS pop3_maildrop_locks (
  maildrop   text PRIMARY KEY,          -- ownerLabel, lower case (pop3/session.ts)
  node       text NOT NULL,             -- the node holding it
  token      text NOT NULL UNIQUE,      -- one per POP3 session
  expires_at timestamptz NOT NULL       -- the lease: free once past
);
