-- Threads and their items. Applied inside the configured schema (search_path is set by the
-- migrator); every statement must be safe to run exactly once inside one transaction.

CREATE TABLE threads (
    id                    text        PRIMARY KEY,
    user_id               text        NOT NULL,
    -- Global insertion order: the tiebreaker for equal created_at (§9 advice).
    seq                   bigserial   NOT NULL UNIQUE,
    created_at            timestamp(6) NOT NULL,
    title                 text,
    status                jsonb       NOT NULL DEFAULT '{"type":"active"}',
    allowed_image_domains jsonb,
    metadata              jsonb       NOT NULL DEFAULT '{}',
    -- Bumped by every write to the thread or its items: lets an actor tell whether its
    -- in-memory history is current.
    version               bigint      NOT NULL DEFAULT 0,
    updated_at            timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX threads_by_user_created ON threads (user_id, created_at, seq);

CREATE TABLE items (
    thread_id  text         NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
    id         text         NOT NULL,
    seq        bigserial    NOT NULL,
    created_at timestamp(6) NOT NULL,
    kind       text         NOT NULL,
    -- The item's exact wire JSON: read back byte for byte.
    body       text         NOT NULL,
    PRIMARY KEY (thread_id, id)
);

CREATE INDEX items_by_thread_order ON items (thread_id, created_at, seq);

CREATE TABLE feedback (
    thread_id  text        NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
    item_id    text        NOT NULL,
    user_id    text        NOT NULL,
    kind       text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (thread_id, item_id, user_id)
);
