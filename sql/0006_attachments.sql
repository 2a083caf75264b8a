-- Attachments (protocol §3.14, §3.15, §7.3): metadata and bytes in the shared database, so any
-- instance serves any upload, preview and model call. Like items, an attachment goes with its
-- thread explicitly (no foreign key: the thread row may not exist yet when an upload starts).

CREATE TABLE attachments (
    id             text        PRIMARY KEY,
    user_id        text        NOT NULL,
    -- Stamped when a message that carries the attachment is stored; NULL until then.
    thread_id      text,
    name           text        NOT NULL,
    mime_type      text        NOT NULL,
    kind           text        NOT NULL CHECK (kind IN ('image', 'file')),
    -- attachments.create's size (the upload must match it); for a direct upload, its size.
    declared_size  bigint      NOT NULL,
    -- Bytes stored, once the upload finished (uploaded_at set).
    size           bigint,
    created_at     timestamptz NOT NULL DEFAULT now(),
    uploaded_at    timestamptz,
    -- The upload being received (its chunks are written as they arrive): who claimed it and
    -- when, so a second upload is refused and an abandoned one can be taken over.
    upload_token   text,
    upload_started timestamptz
);

CREATE INDEX attachments_by_user ON attachments (user_id);
CREATE INDEX attachments_by_thread ON attachments (thread_id) WHERE thread_id IS NOT NULL;
-- The clean-up of uploads never used in a message.
CREATE INDEX attachments_unused ON attachments (created_at) WHERE thread_id IS NULL;

-- The bytes, in chunks written and read one at a time: no request holds a whole file in
-- memory or a connection for the length of a transfer.
CREATE TABLE attachment_chunks (
    attachment_id text   NOT NULL REFERENCES attachments (id) ON DELETE CASCADE,
    seq           int    NOT NULL,
    data          bytea  NOT NULL,
    PRIMARY KEY (attachment_id, seq)
);

-- Images and PDFs are compressed already: keep the bytes out of line without pglz.
ALTER TABLE attachment_chunks ALTER COLUMN data SET STORAGE EXTERNAL;

-- The key that signs upload and preview URLs when the configuration gives none: one per
-- database, so every instance and every restart accepts the URLs the others handed out.
CREATE TABLE url_signing_key (
    id  int   PRIMARY KEY CHECK (id = 1),
    key bytea NOT NULL
);
