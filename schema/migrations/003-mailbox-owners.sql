-- Mailbox identity (issue 13): a user's mailbox belongs to the AD object (objectGUID), not to its login. One row per
-- mailbox directory; src/lifecycle/registry.ts keeps it. Kept in the settings database because the store needs the
-- answer synchronously (better-sqlite3) and the rows must survive exactly as long as the settings they refer to.
CREATE TABLE mailboxes (
  guid         TEXT PRIMARY KEY CHECK (guid = lower(guid) AND guid <> ''),
  -- relative to the store root: users/<guid> for mailboxes made since, users/<login> for one that existed before
  -- (claimed in place, so nothing is moved and Dovecot's %Ln layout still finds it until the account is renamed)
  dir          TEXT NOT NULL UNIQUE CHECK (dir LIKE 'users/%'),
  login        TEXT NOT NULL,                 -- the sAMAccountName last seen, for display and the settings rows
  created_at   TEXT NOT NULL,
  seen_at      TEXT NOT NULL,                 -- last time the account was found in AD
  orphaned_at  TEXT,                          -- when the account was found gone from AD; NULL = active
  -- the account's Users > Services overrides, held while it is orphaned so a new account with the reused login
  -- does not inherit them, and given back if the account comes back (AD recycle bin)
  held_settings TEXT CHECK (held_settings IS NULL OR json_valid(held_settings))
) WITHOUT ROWID;
CREATE INDEX mailboxes_orphaned ON mailboxes (orphaned_at) WHERE orphaned_at IS NOT NULL;
