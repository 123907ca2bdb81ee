-- An EXPUNGE in the shared folder index in one round trip (issue 16, cost of the shared engine;
-- src/state/postgres/mail-index.ts removeWrite). It was a transaction of its own: BEGIN, the folder row FOR UPDATE,
-- the DELETE, the expunge history's INSERT, its count, the folder's UPDATE, COMMIT — seven round trips — and then
-- the catch-up query, because the writer did not learn what the folder was before its change. This function does
-- the same under the same lock and returns, as postern_mail_update2 (081) does, the MODSEQ the expunge got, the UIDs
-- it removed and the folder's state before it, so that a node whose copy is at that state writes the expunge into
-- its copy and skips the catch-up.
--
-- The rules are those of the transaction it replaces: the folder row is locked first (a concurrent change of the
-- folder waits for it); one new MODSEQ above every earlier one for the whole expunge (RFC 7162 §3.1.1), none when
-- no UID given is listed any more; each removed UID is recorded in the expunge history under that MODSEQ (RFC 7162
-- §3.2.5.1 VANISHED (EARLIER)); the history is kept to p_limit entries, dropping the oldest tenth beyond it and
-- raising the folder's vanished floor to the highest MODSEQ dropped (§3.2.5.2: below it, the client resyncs).
CREATE FUNCTION postern_mail_remove(p_folder bigint, p_uid bigint[], p_limit integer)
RETURNS TABLE (o_modseq bigint, o_uids bigint[], o_uidnext bigint, o_uidvalidity bigint, o_prev_modseq bigint)
LANGUAGE plpgsql AS $$
DECLARE
  f_modseq  bigint;
  f_uidnext bigint;
  f_uidval  bigint;
  f_floor   bigint;
  v_uids    bigint[];
  v_n       bigint;
  v_top     bigint;
BEGIN
  SELECT modseq, uidnext, uidvalidity, vanishedfloor INTO f_modseq, f_uidnext, f_uidval, f_floor
    FROM mail_folders WHERE id = p_folder FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'mail index: folder % is gone', p_folder USING ERRCODE = 'P0002';
  END IF;
  WITH d AS (DELETE FROM mail_messages WHERE folder = p_folder AND uid = ANY (p_uid) RETURNING uid)
  SELECT coalesce(array_agg(uid ORDER BY uid), '{}') INTO v_uids FROM d;
  IF cardinality(v_uids) = 0 THEN
    RETURN QUERY SELECT f_modseq, v_uids, f_uidnext, f_uidval, f_modseq;
    RETURN;
  END IF;
  INSERT INTO mail_expunged (folder, uid, modseq) SELECT p_folder, u, f_modseq + 1 FROM unnest(v_uids) AS u
    ON CONFLICT (folder, uid) DO UPDATE SET modseq = excluded.modseq;
  SELECT count(*) INTO v_n FROM mail_expunged WHERE folder = p_folder;
  IF v_n > p_limit THEN
    SELECT max(modseq) INTO v_top
      FROM (SELECT modseq FROM mail_expunged WHERE folder = p_folder ORDER BY modseq LIMIT v_n - p_limit + p_limit / 10) t;
    DELETE FROM mail_expunged WHERE folder = p_folder AND modseq <= v_top;
    f_floor := GREATEST(v_top, f_floor);
  END IF;
  UPDATE mail_folders SET modseq = f_modseq + 1, vanishedfloor = f_floor WHERE id = p_folder;
  RETURN QUERY SELECT f_modseq + 1, v_uids, f_uidnext, f_uidval, f_modseq;
END
$$;
