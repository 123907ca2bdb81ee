-- The queue's metadata on PostgreSQL (issue 16; src/state/postgres/queue.ts). With state postgres a queued message
-- is its file <id>.eml in the shared queue directory and this row, which holds its envelope (the JSON the SQLite/
-- file default keeps in <id>.json) and who is delivering it. The row's INSERT is the commit point: SMTP answers 250
-- only after it. A node takes due messages with SELECT … FOR UPDATE SKIP LOCKED, setting claimed_by and a lease it
-- renews while it delivers; a message whose lease ran out (its node died) is due again for any node.
CREATE TABLE queue_messages (
  id               text PRIMARY KEY,
  envelope         jsonb NOT NULL,
  received_at      timestamptz NOT NULL,
  next_attempt_at  timestamptz NOT NULL,
  attempts         integer NOT NULL DEFAULT 0,
  -- The node that wrote the message file (for an admin tracing a file to its node).
  queued_by        text NOT NULL,
  claimed_by       text,
  lease_until      timestamptz
);

-- The claim's scan: due messages in due order.
CREATE INDEX queue_messages_due ON queue_messages (next_attempt_at);
