-- The Bayes training queue shared by the nodes (issue 16; src/state/postgres/training-queue.ts): a message a user
-- moved into or out of Junk, to be told to spamd (TELL) once, by one node. A node takes due jobs with
-- SELECT … FOR UPDATE SKIP LOCKED for a lease; a job whose node died is due again when its lease has run out.
CREATE TABLE spam_training (
  id           bigserial PRIMARY KEY,
  login        text NOT NULL,
  kind         text NOT NULL CHECK (kind IN ('spam', 'ham')),
  message      bytea NOT NULL,
  queued_at    timestamptz NOT NULL DEFAULT now(),
  due_at       timestamptz NOT NULL DEFAULT now(),
  attempts     integer NOT NULL DEFAULT 0,
  holder       text,
  lease_until  timestamptz
);
CREATE INDEX spam_training_due ON spam_training (due_at);
