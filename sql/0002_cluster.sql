-- Cluster: which instance serves each live thread (a lease with a fencing token), and the
-- instances themselves (heartbeats). See specs/cluster.md.

CREATE TABLE instances (
    instance_id  text        PRIMARY KEY,
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE thread_leases (
    thread_id     text        PRIMARY KEY REFERENCES threads (id) ON DELETE CASCADE,
    instance_id   text        NOT NULL,
    -- Bumped on every change of owner: a write carrying an older token is refused.
    fencing       bigint      NOT NULL DEFAULT 1,
    expires_at    timestamptz NOT NULL,
    state         text        NOT NULL DEFAULT 'idle',
    live_since    timestamptz NOT NULL DEFAULT now(),
    last_activity timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX thread_leases_by_instance ON thread_leases (instance_id);
