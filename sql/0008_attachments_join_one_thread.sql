-- An attachment joins the thread of the first message that carries it, and no other
-- (protocol §3.1). The message's transaction links it with a conditional update (unlinked, or
-- this thread's already) and passes the rows it expected and updated to this function, which
-- raises SQLSTATE CK002 (mapped to StoreError::AttachmentTaken, a 400 for the request) when
-- one was not: another thread took it meanwhile, or it was deleted. The transaction is then
-- aborted, so nothing of that message or its new thread is stored.
CREATE OR REPLACE FUNCTION attachments_linked(expected integer, updated bigint) RETURNS integer
LANGUAGE plpgsql AS $$
BEGIN
  IF updated <> expected THEN
    RAISE EXCEPTION '% of % attachments belong to another thread or are gone',
      expected - updated, expected
      USING ERRCODE = 'CK002';
  END IF;
  RETURN expected;
END
$$;
