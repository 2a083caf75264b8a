-- A group commit sends BEGIN, its statements and COMMIT in one round trip (no waiting for
-- each answer), so a thread whose lease another instance took must fail the transaction in
-- the server: a client noticing it afterwards would be too late, COMMIT being already sent.
-- The lease check passes what it updated to this function, which raises SQLSTATE CK001
-- (mapped to StoreError::LeaseLost) unless every thread of the statement still holds its
-- lease; the transaction is then aborted and its COMMIT rolls back.
CREATE OR REPLACE FUNCTION leases_held(expected integer, updated bigint) RETURNS integer
LANGUAGE plpgsql AS $$
BEGIN
  IF updated <> expected THEN
    RAISE EXCEPTION 'the lease of % of % threads is held by another instance',
      expected - updated, expected
      USING ERRCODE = 'CK001';
  END IF;
  RETURN expected;
END
$$;
