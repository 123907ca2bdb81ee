-- The message trace on PostgreSQL (issue 16): the three tables of trace.db (src/trace/store.ts) with the same
-- columns and meaning, so a trace search on any node finds the paths every node recorded
-- (src/trace/pg-store.ts). Times are epoch milliseconds as in SQLite. No foreign keys: a node writes events of
-- a message whose first events another node has not written yet (batches of two nodes commit in any order).
CREATE TABLE trace_messages (
  queue_id   text PRIMARY KEY,
  message_id text,
  sender     text,
  first_at   bigint NOT NULL,
  last_at    bigint NOT NULL
);
CREATE INDEX trace_messages_message_id ON trace_messages (message_id);
CREATE INDEX trace_messages_sender ON trace_messages (sender, first_at);
CREATE INDEX trace_messages_last_at ON trace_messages (last_at);
CREATE INDEX trace_messages_first_at ON trace_messages (first_at);

CREATE TABLE trace_recipients (
  address  text NOT NULL,
  queue_id text NOT NULL,
  PRIMARY KEY (address, queue_id)
);
CREATE INDEX trace_recipients_queue_id ON trace_recipients (queue_id);

CREATE TABLE trace_events (
  seq      bigserial PRIMARY KEY,
  queue_id text NOT NULL,
  at       bigint NOT NULL,
  type     text NOT NULL,
  rcpt     text,
  detail   jsonb
);
CREATE INDEX trace_events_queue_id ON trace_events (queue_id, seq);
