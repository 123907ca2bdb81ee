-- ${dataDir}/sieve.db: what Sieve at delivery remembers between messages (src/sieve/state.ts). Kept out of
-- settings.db: these rows change with mail traffic, the settings almost never.

-- RFC 5230 §4.2 / RFC 6131: one vacation reply per (user, sender, handle) per :days / :seconds.
CREATE TABLE vacation_replies (
  user       TEXT NOT NULL,     -- lower-case login of the mailbox that answered
  sender     TEXT NOT NULL,     -- lower-case address answered (the envelope sender)
  handle     TEXT NOT NULL,     -- :handle, or the hash of the reply's reason/subject/from (RFC 5230 §4.2)
  sent_at    INTEGER NOT NULL,  -- ms since the epoch
  expires_at INTEGER NOT NULL,  -- ms since the epoch: no new reply before this
  PRIMARY KEY (user, sender, handle)
) WITHOUT ROWID;
CREATE INDEX vacation_replies_expiry ON vacation_replies (expires_at);

-- RFC 7352 duplicate: ids (a Message-ID, :header or :uniqueid value, with :handle) seen per user until expiry.
CREATE TABLE duplicate_ids (
  user       TEXT NOT NULL,
  id         TEXT NOT NULL,
  expires_at INTEGER NOT NULL,
  PRIMARY KEY (user, id)
) WITHOUT ROWID;
CREATE INDEX duplicate_ids_expiry ON duplicate_ids (expires_at);

-- Out-of-office set by IT (admin API / CLI), applied at delivery before the user's own script.
CREATE TABLE out_of_office (
  user       TEXT PRIMARY KEY,  -- lower-case login
  start_at   TEXT,              -- ISO date-time from which replies are sent (NULL: now)
  end_at     TEXT,              -- ISO date-time after which they stop (NULL: until cleared)
  subject    TEXT,              -- NULL: "Auto: <original subject>"
  body       TEXT NOT NULL,
  days       INTEGER NOT NULL DEFAULT 7,
  updated_at TEXT NOT NULL,
  updated_by TEXT
) WITHOUT ROWID;
