-- Email > Domains: the IMAP server that holds this domain's mailboxes (RFC 2221 login referrals), e.g. a domain
-- still hosted on the old server during a migration. An imap://host[:port]/ URL, validated by src/settings/store.ts.
ALTER TABLE domains ADD COLUMN imap_referral TEXT;
