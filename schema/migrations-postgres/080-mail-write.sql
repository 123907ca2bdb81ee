-- The shared folder index's writes in one round trip each (issue 16, src/state/postgres/mail-index.ts). An APPEND
-- or a delivery used to cost a look-up of its file, then BEGIN, the folder row FOR UPDATE, the INSERT, a DELETE of
-- stale expunges, the folder's UPDATE and COMMIT: seven round trips, each a wait on a loaded machine, most of them
-- with the folder row locked so that every other writer of the folder waited too. A STORE cost five. These
-- functions do the same steps inside PostgreSQL, as one statement (autocommitted by the caller): the lock is held
-- for the time of the work, not of the round trips.
--
-- The guarantees are those of the transaction path: the folder row is locked first (FOR UPDATE), so UIDs come from
-- UIDNEXT under the lock and are handed out once and strictly increasing across nodes (RFC 3501 §2.3.1.1), and
-- one change gets one MODSEQ above every earlier one (RFC 7162 §3.1.1); in READ COMMITTED each statement after the
-- lock sees what the previous holder committed, so a file another node indexed meanwhile is found, not inserted
-- twice.

-- The catch-up query of every node (PgFolderIndex.delta / changedSince: rows of a folder with modseq > x) reads an
-- index instead of every row of the folder.
CREATE INDEX mail_messages_modseq ON mail_messages (folder, modseq);

-- New files of a folder: those not yet listed get the next UIDs in the order given, all under one new MODSEQ (one
-- command, one MODSEQ); returns the UID of each file given (listed before or now) and the MODSEQ of the change
-- (the folder's unchanged one when every file was listed already). New UIDs are at or above UIDNEXT, which no
-- expunge history entry reaches (expunged UIDs are below it, and a reset clears the history), so no stale
-- mail_expunged row has to go.
CREATE FUNCTION postern_mail_add(p_folder bigint, p_base text[], p_name text[], p_size bigint[], p_idate bigint[],
                                 p_kw text[], p_sd bigint[], p_hd text[])
RETURNS TABLE (o_base text, o_uid bigint, o_modseq bigint) LANGUAGE plpgsql AS $$
DECLARE
  f_uidnext bigint;
  f_modseq  bigint;
  n         bigint;
BEGIN
  SELECT uidnext, modseq INTO f_uidnext, f_modseq FROM mail_folders WHERE id = p_folder FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'mail index: folder % is gone', p_folder USING ERRCODE = 'P0002';
  END IF;
  INSERT INTO mail_messages (folder, uid, base, name, size, internal_date, keywords, modseq, save_date, headers)
  SELECT p_folder, f_uidnext + row_number() OVER (ORDER BY x.ord) - 1, x.base, x.name, x.size, x.idate, x.kw,
         f_modseq + 1, x.sd, x.hd::jsonb
    FROM unnest(p_base, p_name, p_size, p_idate, p_kw, p_sd, p_hd) WITH ORDINALITY AS x(base, name, size, idate, kw, sd, hd, ord)
   WHERE NOT EXISTS (SELECT 1 FROM mail_messages m WHERE m.folder = p_folder AND m.base = x.base)
   ORDER BY x.ord;
  GET DIAGNOSTICS n = ROW_COUNT;
  IF n > 0 THEN
    f_modseq := f_modseq + 1;
    UPDATE mail_folders SET uidnext = f_uidnext + n, modseq = f_modseq WHERE id = p_folder;
  END IF;
  RETURN QUERY SELECT m.base, m.uid, f_modseq FROM mail_messages m WHERE m.folder = p_folder AND m.base = ANY (p_base);
END
$$;

-- New names and keywords of messages (STORE, a flag rename found by a sync): the rows that exist get one new
-- MODSEQ; returns it, or the folder's unchanged MODSEQ when none of the UIDs exists any more (as the transaction
-- path: no change, no new MODSEQ).
CREATE FUNCTION postern_mail_update(p_folder bigint, p_uid bigint[], p_name text[], p_kw text[])
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  f_modseq bigint;
  n        bigint;
BEGIN
  SELECT modseq INTO f_modseq FROM mail_folders WHERE id = p_folder FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'mail index: folder % is gone', p_folder USING ERRCODE = 'P0002';
  END IF;
  UPDATE mail_messages m SET name = x.name, keywords = x.kw, modseq = f_modseq + 1
    FROM unnest(p_uid, p_name, p_kw) AS x(uid, name, kw)
   WHERE m.folder = p_folder AND m.uid = x.uid;
  GET DIAGNOSTICS n = ROW_COUNT;
  IF n = 0 THEN
    RETURN f_modseq;
  END IF;
  UPDATE mail_folders SET modseq = f_modseq + 1 WHERE id = p_folder;
  RETURN f_modseq + 1;
END
$$;
