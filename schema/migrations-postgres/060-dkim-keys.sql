-- DKIM signing keys shared by the nodes (issue 16; src/state/postgres/dkim-keys.ts): what `${dataDir}/dkim/` holds
-- as key files with the embedded default. One key per domain at a time (the primary key), as there: a rotation
-- replaces the row, and the old selector's DNS record is withdrawn by hand a few days later.
-- The private key is PKCS#8 PEM in clear, like the 0600 key file: whoever can read this table can sign for the
-- domain, so access to the database is access to the keys.
CREATE TABLE dkim_keys (
  domain       text PRIMARY KEY CHECK (domain = lower(domain) AND domain <> ''),
  selector     text NOT NULL CHECK (selector ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),
  private_key  text NOT NULL,
  bits         integer NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now()
);
