-- Attachments (protocol §3.14, §3.15, §7.3): metadata and bytes in the shared database, so any
-- instance serves any upload, preview or model call. Like items, an attachment goes with its
-- thread explicitly (no foreign key: the thread row may not exist yet when an upload starts).

CREATE TABLE attachments (
    id            text        PRIMARY KEY,
    user_id       text        NOT NULL,
    -- Stamped when a message that carries the attachment is stored; NULL until then.
    thread_id     text,
    name          text        NOT NULL,
    mime_type     text        NOT NULL,
    kind          text        NOT NULL CHECK (kind IN ('image', 'file')),
    declared_size bigint      NOT NULL,
    -- NULL until the bytes arrived (two-phase upload).
    content       bytea,
    created_at    timestamptz NOT NULL DEFAULT now(),
    uploaded_at   timestamptz
);

-- Images and PDFs are compressed already: keep the bytes out of line without pglz.
ALTER TABLE attachments ALTER COLUMN content SET STORAGE EXTERNAL;

CREATE INDEX attachments_by_thread ON attachments (thread_id) WHERE thread_id IS NOT NULL;
-- The clean-up of uploads never used in a message.
CREATE INDEX attachments_unused ON attachments (created_at) WHERE thread_id IS NULL;

-- The key that signs upload and preview URLs when the configuration gives none: one per
-- database, so every instance and every restart accepts the URLs the others handed out.
CREATE TABLE url_signing_key (
    id  int   PRIMARY KEY CHECK (id = 1),
    key bytea NOT NULL
);
