-- The shared folder index's writes tell the writer what the folder was before them (issue 16, cost of the shared
-- engine; src/state/postgres/maildir-pg-index.ts). After every APPEND, delivery or STORE the node brought its copy
-- of the index up to date with one more query (the catch-up, PgFolderIndex.delta), although in the common case
-- nothing but its own change had happened since the copy was last pulled. These functions return, with what
-- postern_mail_add / postern_mail_update (080) return, the folder's UIDVALIDITY, UIDNEXT and MODSEQ just before
-- the change (read under the folder row's lock, so exactly the state the change was applied to) and after it: a
-- node whose copy is at the state before knows that its change is all that happened, writes it into its copy, and
-- skips the catch-up; otherwise it pulls as before.
--
-- New names: the 080 functions stay, so that a node of the previous version keeps working beside one of this
-- version during a rolling upgrade. The guarantees are those of 080 (folder row FOR UPDATE first: UIDs handed out
-- once and strictly increasing across nodes, RFC 3501 §2.3.1.1; one MODSEQ per change above every earlier one,
-- RFC 7162 §3.1.1).

CREATE FUNCTION postern_mail_add2(p_folder bigint, p_base text[], p_name text[], p_size bigint[], p_idate bigint[],
                                  p_kw text[], p_sd bigint[], p_hd text[])
RETURNS TABLE (o_base text, o_uid bigint, o_modseq bigint, o_uidnext bigint, o_uidvalidity bigint,
               o_prev_modseq bigint, o_prev_uidnext bigint)
LANGUAGE plpgsql AS $$
DECLARE
  f_uidnext bigint;
  f_modseq  bigint;
  f_uidval  bigint;
  n         bigint;
BEGIN
  SELECT uidnext, modseq, uidvalidity INTO f_uidnext, f_modseq, f_uidval FROM mail_folders WHERE id = p_folder FOR UPDATE;
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
    UPDATE mail_folders SET uidnext = f_uidnext + n, modseq = f_modseq + 1 WHERE id = p_folder;
  END IF;
  RETURN QUERY SELECT m.base, m.uid, CASE WHEN n > 0 THEN f_modseq + 1 ELSE f_modseq END, f_uidnext + n, f_uidval,
                      f_modseq, f_uidnext
                 FROM mail_messages m WHERE m.folder = p_folder AND m.base = ANY (p_base);
END
$$;

-- One row: the MODSEQ the change got (the unchanged one when none of the UIDs exists any more), the UIDs changed,
-- and the folder's state before.
CREATE FUNCTION postern_mail_update2(p_folder bigint, p_uid bigint[], p_name text[], p_kw text[])
RETURNS TABLE (o_modseq bigint, o_uids bigint[], o_uidnext bigint, o_uidvalidity bigint, o_prev_modseq bigint)
LANGUAGE plpgsql AS $$
DECLARE
  f_modseq  bigint;
  f_uidnext bigint;
  f_uidval  bigint;
  v_uids    bigint[];
BEGIN
  SELECT modseq, uidnext, uidvalidity INTO f_modseq, f_uidnext, f_uidval FROM mail_folders WHERE id = p_folder FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'mail index: folder % is gone', p_folder USING ERRCODE = 'P0002';
  END IF;
  WITH u AS (
    UPDATE mail_messages m SET name = x.name, keywords = x.kw, modseq = f_modseq + 1
      FROM unnest(p_uid, p_name, p_kw) AS x(uid, name, kw)
     WHERE m.folder = p_folder AND m.uid = x.uid
    RETURNING m.uid
  )
  SELECT coalesce(array_agg(uid), '{}') INTO v_uids FROM u;
  IF cardinality(v_uids) = 0 THEN
    RETURN QUERY SELECT f_modseq, v_uids, f_uidnext, f_uidval, f_modseq;
    RETURN;
  END IF;
  UPDATE mail_folders SET modseq = f_modseq + 1 WHERE id = p_folder;
  RETURN QUERY SELECT f_modseq + 1, v_uids, f_uidnext, f_uidval, f_modseq;
END
$$;
