-- A lease is valid while its owner's heartbeat is fresh: heartbeats update one row per
-- instance instead of every lease row (which made every fenced write wait for them).
ALTER TABLE thread_leases DROP COLUMN expires_at;
