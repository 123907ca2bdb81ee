-- Runtime settings (DESIGN.md §7). Applied by src/settings/db.ts inside a transaction: no BEGIN/COMMIT here.
-- Names, local parts and login keys are stored lower-case by src/settings/store.ts, which validates everything;
-- the CHECKs below only guard against hand edits.

-- Email > Domains: each domain is delivered to local mailboxes or relayed to another server.
CREATE TABLE domains (
  name        TEXT PRIMARY KEY CHECK (name = lower(name) AND name <> ''),
  type        TEXT NOT NULL CHECK (type IN ('local', 'relay')),
  nexthop     TEXT,                       -- host[:port], relay domains only
  bcc         TEXT,                       -- "Always send a copy (Bcc)" of mail to this domain
  disclaimer  TEXT,                       -- Markdown, attached to messages sent from this domain
  created_at  TEXT NOT NULL,
  updated_at  TEXT NOT NULL,
  CHECK ((type = 'relay') = (nexthop IS NOT NULL))
) WITHOUT ROWID;

-- Email > Email addresses (pseudonyms): one row per local part and domain; domain NULL = every local domain.
-- No foreign key to domains on purpose: removing a domain leaves its addresses inert (they only match configured
-- local domains) instead of deleting them, and adding the domain back restores them.
CREATE TABLE pseudonyms (
  id                  INTEGER PRIMARY KEY,
  local_part          TEXT NOT NULL CHECK (local_part = lower(local_part) AND local_part <> ''),
  domain              TEXT CHECK (domain IS NULL OR domain = lower(domain)),
  target_kind         TEXT NOT NULL CHECK (target_kind IN ('user', 'group')),
  target_name         TEXT NOT NULL CHECK (target_name <> ''),
  local_network_only  INTEGER NOT NULL DEFAULT 0 CHECK (local_network_only IN (0, 1)),
  created_at          TEXT NOT NULL
);
CREATE UNIQUE INDEX pseudonyms_address ON pseudonyms (local_part, ifnull(domain, ''));

-- Users > Services: per-user overrides. NULL = the global setting applies.
CREATE TABLE users (
  login_key            TEXT PRIMARY KEY,   -- lower-case sAMAccountName
  login                TEXT NOT NULL,      -- as typed, for display
  quota_mb             INTEGER CHECK (quota_mb IS NULL OR quota_mb >= 0),
  spam_retention_days  INTEGER CHECK (spam_retention_days IS NULL OR spam_retention_days >= 0),
  forward              TEXT,
  keep_copy            INTEGER NOT NULL DEFAULT 0 CHECK (keep_copy IN (0, 1)),
  updated_at           TEXT NOT NULL
) WITHOUT ROWID;

-- Key/value settings; the keys, types and defaults are defined in src/settings/keys.ts. value is JSON.
CREATE TABLE settings (
  key         TEXT PRIMARY KEY,
  value       TEXT NOT NULL CHECK (json_valid(value)),
  updated_at  TEXT NOT NULL
) WITHOUT ROWID;
