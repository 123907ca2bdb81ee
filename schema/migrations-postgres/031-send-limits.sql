-- Send-limit counters shared by the nodes (issue 16, src/limits/pg-counters.ts): what limits.db holds per node
-- (src/limits/store.ts), plus what makes the limit exact across nodes. Every check and every commit of a key takes
-- that key's transaction-level advisory lock, so the count a node reads and the reservation it adds are one step.
CREATE TABLE send_counts (
  key        text NOT NULL,      -- "user:<lower-case login>" or "ip:<address or IPv6 /64>"
  minute     bigint NOT NULL,    -- minutes since the epoch
  messages   bigint NOT NULL,
  recipients bigint NOT NULL,
  PRIMARY KEY (key, minute)
);
CREATE INDEX send_counts_minute ON send_counts (minute);

-- An open SMTP transaction's share (MAIL FROM reserves one message, each RCPT TO one recipient) until DATA is
-- answered (moved into send_counts) or the transaction ends without it (deleted). A node killed mid-transaction
-- leaves its rows; they stop counting at expires_at.
CREATE TABLE send_reservations (
  id          text PRIMARY KEY,  -- node, session and a sequence number: one per transaction
  user_key    text NOT NULL,
  ip_key      text,
  recipients  bigint NOT NULL DEFAULT 0,
  expires_at  timestamptz NOT NULL
);
CREATE INDEX send_reservations_user ON send_reservations (user_key);
CREATE INDEX send_reservations_ip ON send_reservations (ip_key);

-- One alert per key and window for the whole cluster: the node whose insert or update wins logs it.
CREATE TABLE send_alerts (
  key    text PRIMARY KEY,
  at     timestamptz NOT NULL,
  alert  jsonb NOT NULL
);
