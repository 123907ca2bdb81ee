-- Users > Services: a custom send limit per user (src/limits). NULL = smtp.sendLimit.messagesPerHour /
-- smtp.sendLimit.recipientsPerHour apply; 0 = no limit for this user. The counters themselves are not here: they
-- change with every message and live in ${dataDir}/limits.db (src/limits/store.ts).
ALTER TABLE users ADD COLUMN send_limit_messages INTEGER CHECK (send_limit_messages IS NULL OR send_limit_messages >= 0);
ALTER TABLE users ADD COLUMN send_limit_recipients INTEGER CHECK (send_limit_recipients IS NULL OR send_limit_recipients >= 0);
