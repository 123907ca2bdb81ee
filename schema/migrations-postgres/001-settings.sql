-- Runtime settings on PostgreSQL (issue 16): the four tables of the SQLite settings database (schema/migrations
-- 001-004) with the same columns, values and meaning, so src/state/postgres/settings-sync.ts copies rows between
-- them unchanged. Applied by src/state/postgres/pool.ts inside a transaction: no BEGIN/COMMIT here.
-- Text times (ISO 8601) and 0/1 integers as in SQLite; src/settings/store.ts validates everything, the CHECKs only
-- guard against hand edits.
CREATE TABLE domains (
  name          text PRIMARY KEY CHECK (name = lower(name) AND name <> ''),
  type          text NOT NULL CHECK (type IN ('local', 'relay')),
  nexthop       text,
  bcc           text,
  disclaimer    text,
  created_at    text NOT NULL,
  updated_at    text NOT NULL,
  imap_referral text,
  CHECK ((type = 'relay') = (nexthop IS NOT NULL))
);

CREATE TABLE pseudonyms (
  id                  bigint PRIMARY KEY,
  local_part          text NOT NULL CHECK (local_part = lower(local_part) AND local_part <> ''),
  domain              text CHECK (domain IS NULL OR domain = lower(domain)),
  target_kind         text NOT NULL CHECK (target_kind IN ('user', 'group')),
  target_name         text NOT NULL CHECK (target_name <> ''),
  local_network_only  integer NOT NULL DEFAULT 0 CHECK (local_network_only IN (0, 1)),
  created_at          text NOT NULL
);
CREATE UNIQUE INDEX pseudonyms_address ON pseudonyms (local_part, coalesce(domain, ''));

CREATE TABLE users (
  login_key             text PRIMARY KEY,
  login                 text NOT NULL,
  quota_mb              bigint CHECK (quota_mb IS NULL OR quota_mb >= 0),
  spam_retention_days   bigint CHECK (spam_retention_days IS NULL OR spam_retention_days >= 0),
  forward               text,
  keep_copy             integer NOT NULL DEFAULT 0 CHECK (keep_copy IN (0, 1)),
  updated_at            text NOT NULL,
  send_limit_messages   bigint CHECK (send_limit_messages IS NULL OR send_limit_messages >= 0),
  send_limit_recipients bigint CHECK (send_limit_recipients IS NULL OR send_limit_recipients >= 0)
);

-- value is JSON text, as in SQLite (the keys, types and defaults are in src/settings/keys.ts).
CREATE TABLE settings (
  key         text PRIMARY KEY,
  value       text NOT NULL CHECK (value::jsonb IS NOT NULL),
  updated_at  text NOT NULL
);

-- One row: bumped by every change, so a node that missed a NOTIFY (its LISTEN connection was down) and a node
-- that starts see whether their copy is current.
CREATE TABLE settings_version (
  one      boolean PRIMARY KEY DEFAULT true CHECK (one),
  version  bigint NOT NULL
);
INSERT INTO settings_version (version) VALUES (0);
