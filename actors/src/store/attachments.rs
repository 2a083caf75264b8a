//! The `attachments` and `attachment_chunks` tables (sql/0006), and the URL signing key kept
//! in the database. Bytes move in chunks, each its own statement on a pooled connection taken
//! for just that statement: a slow client never holds a connection, and no request holds a
//! whole file. Every read of an attachment is scoped to its owner by the callers of these
//! functions; none of them hands out bytes without an owner or a checked signature upstream.

use std::time::Duration;

use tokio_postgres::types::Type;

use super::{Store, StoreError};
use crate::protocol::AttachmentKind;

/// Bytes per stored chunk (and the most an upload buffers before writing).
pub(crate) const CHUNK_BYTES: usize = 512 * 1024;

/// An attachment's row, without its bytes.
#[derive(Clone, Debug)]
pub(crate) struct AttachmentRow {
    pub id: String,
    pub user_id: String,
    pub thread_id: Option<String>,
    pub name: String,
    pub mime_type: String,
    pub kind: AttachmentKind,
    pub declared_size: i64,
    /// Bytes stored, once uploaded.
    pub size: Option<i64>,
}

impl AttachmentRow {
    pub fn uploaded(&self) -> bool {
        self.size.is_some()
    }
}

/// A new attachment.
pub(crate) struct NewAttachment<'a> {
    pub id: &'a str,
    pub user_id: &'a str,
    pub name: &'a str,
    pub mime_type: &'a str,
    pub kind: AttachmentKind,
    pub declared_size: i64,
    /// Set for a direct upload: the row is created already claimed by it.
    pub upload_token: Option<&'a str>,
}

/// How claiming an upload went.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Claim {
    Claimed,
    /// The bytes were stored before: an upload URL is good for one upload.
    AlreadyUploaded,
    /// Another upload of it is being received.
    InProgress,
    Missing,
}

const COLUMNS: &str =
    "id, user_id, thread_id, name, mime_type, kind, declared_size, CASE WHEN uploaded_at IS NULL THEN NULL ELSE size END";

// A direct upload's row is created claimed by it (`upload_token` set, `upload_started` now).
const INSERT_ATTACHMENT: &str = "
    INSERT INTO attachments
      (id, user_id, name, mime_type, kind, declared_size, upload_token, upload_started)
    VALUES ($1, $2, $3, $4, $5, $6, $7, CASE WHEN $7::text IS NULL THEN NULL ELSE now() END)";

// Taken when not uploaded and unclaimed, or claimed longer ago than $3 seconds (abandoned:
// its chunks go). Answers (uploaded?, NULL when missing; claimed?).
const CLAIM_UPLOAD: &str = "
    WITH target AS (SELECT uploaded_at IS NOT NULL AS uploaded FROM attachments WHERE id = $1),
         claimed AS (UPDATE attachments SET upload_token = $2, upload_started = now()
                     WHERE id = $1 AND uploaded_at IS NULL
                       AND (upload_token IS NULL
                            OR upload_started < now() - make_interval(secs => $3))
                     RETURNING id),
         cleared AS (DELETE FROM attachment_chunks
                     WHERE attachment_id IN (SELECT id FROM claimed))
    SELECT (SELECT uploaded FROM target), EXISTS (SELECT 1 FROM claimed)";

const ABANDON_DIRECT_UPLOAD: &str = "DELETE FROM attachments WHERE id = $1 AND upload_token = $2";

const ABANDON_UPLOAD: &str = "
    WITH released AS (UPDATE attachments SET upload_token = NULL, upload_started = NULL
                      WHERE id = $1 AND upload_token = $2 RETURNING id)
    DELETE FROM attachment_chunks WHERE attachment_id IN (SELECT id FROM released)";

fn row_to_attachment(row: &tokio_postgres::Row) -> Result<AttachmentRow, StoreError> {
    let kind: String = row.get(5);
    Ok(AttachmentRow {
        id: row.get(0),
        user_id: row.get(1),
        thread_id: row.get(2),
        name: row.get(3),
        mime_type: row.get(4),
        kind: AttachmentKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("attachment kind {kind:?}")))?,
        declared_size: row.get(6),
        size: row.get(7),
    })
}

impl Store {
    /// The key that signs URLs when the configuration has none: created once per database by
    /// whichever instance starts first, read by all.
    pub async fn url_signing_key(&self) -> Result<Vec<u8>, StoreError> {
        self.timed("url_signing_key", async move {
            let client = self.pool.get().await?;
            let sql = self.sql(&client);
            let fresh: [u8; 32] = rand::random();
            sql.execute(
                "INSERT INTO url_signing_key (id, key) VALUES (1, $1) ON CONFLICT (id) DO NOTHING",
                &[(&fresh.as_slice(), Type::BYTEA)],
            )
            .await?;
            let row = sql
                .query_one("SELECT key FROM url_signing_key WHERE id = 1", &[])
                .await?;
            Ok(row.get(0))
        })
        .await
    }

    pub(crate) async fn insert_attachment(
        &self,
        new: &NewAttachment<'_>,
    ) -> Result<(), StoreError> {
        self.timed("insert_attachment", async move {
            let client = self.pool.get().await?;
            self.sql(&client)
                .execute(
                    INSERT_ATTACHMENT,
                    &[
                        (&new.id, Type::TEXT),
                        (&new.user_id, Type::TEXT),
                        (&new.name, Type::TEXT),
                        (&new.mime_type, Type::TEXT),
                        (&new.kind.as_str(), Type::TEXT),
                        (&new.declared_size, Type::INT8),
                        (&new.upload_token, Type::TEXT),
                    ],
                )
                .await?;
            Ok(())
        })
        .await
    }

    /// An attachment's row, whoever owns it (the caller checks).
    pub(crate) async fn attachment(&self, id: &str) -> Result<Option<AttachmentRow>, StoreError> {
        self.timed("attachment", async move {
            let client = self.pool.get().await?;
            self.sql(&client)
                .query_opt(
                    &format!("SELECT {COLUMNS} FROM attachments WHERE id = $1"),
                    &[(&id, Type::TEXT)],
                )
                .await?
                .as_ref()
                .map(row_to_attachment)
                .transpose()
        })
        .await
    }

    /// The rows of `ids` that belong to `user_id` (others' and unknown ones are left out).
    pub(crate) async fn user_attachments(
        &self,
        user_id: &str,
        ids: &[String],
    ) -> Result<Vec<AttachmentRow>, StoreError> {
        self.timed("user_attachments", async move {
            let client = self.pool.get().await?;
            self.sql(&client)
                .query(
                    &format!(
                        "SELECT {COLUMNS} FROM attachments WHERE id = ANY($1) AND user_id = $2"
                    ),
                    &[(&ids, Type::TEXT_ARRAY), (&user_id, Type::TEXT)],
                )
                .await?
                .iter()
                .map(row_to_attachment)
                .collect()
        })
        .await
    }

    /// Claims the upload of a created attachment for the upload `token`: refused when it was
    /// uploaded, or while another upload of it is younger than `stale_after` (an older one
    /// was abandoned: its chunks go).
    pub(crate) async fn claim_upload(
        &self,
        id: &str,
        token: &str,
        stale_after: Duration,
    ) -> Result<Claim, StoreError> {
        self.timed("claim_upload", async move {
            let client = self.pool.get().await?;
            let row = self
                .sql(&client)
                .query_one(
                    CLAIM_UPLOAD,
                    &[
                        (&id, Type::TEXT),
                        (&token, Type::TEXT),
                        (&stale_after.as_secs_f64(), Type::FLOAT8),
                    ],
                )
                .await?;
            let uploaded: Option<bool> = row.get(0);
            let claimed: bool = row.get(1);
            Ok(match (uploaded, claimed) {
                (_, true) => Claim::Claimed,
                (None, false) => Claim::Missing,
                (Some(true), false) => Claim::AlreadyUploaded,
                (Some(false), false) => Claim::InProgress,
            })
        })
        .await
    }

    pub(crate) async fn insert_chunk(
        &self,
        id: &str,
        seq: i32,
        data: &[u8],
    ) -> Result<(), StoreError> {
        self.timed("insert_chunk", async move {
            let client = self.pool.get().await?;
            self.sql(&client)
                .execute(
                    "INSERT INTO attachment_chunks (attachment_id, seq, data) VALUES ($1, $2, $3)",
                    &[(&id, Type::TEXT), (&seq, Type::INT4), (&data, Type::BYTEA)],
                )
                .await?;
            Ok(())
        })
        .await
    }

    /// Marks the claimed upload complete; false when the claim was lost meanwhile.
    pub(crate) async fn finish_upload(
        &self,
        id: &str,
        token: &str,
        size: i64,
    ) -> Result<bool, StoreError> {
        self.timed("finish_upload", async move {
            let client = self.pool.get().await?;
            let updated = self
                .sql(&client)
                .execute(
                    "UPDATE attachments SET uploaded_at = now(), size = $3, upload_token = NULL
                 WHERE id = $1 AND upload_token = $2",
                    &[(&id, Type::TEXT), (&token, Type::TEXT), (&size, Type::INT8)],
                )
                .await?;
            Ok(updated == 1)
        })
        .await
    }

    /// Gives up a claimed upload: its chunks go, and the attachment may be uploaded again (or,
    /// for a direct upload, the attachment goes entirely).
    pub(crate) async fn abandon_upload(
        &self,
        id: &str,
        token: &str,
        direct: bool,
    ) -> Result<(), StoreError> {
        self.timed("abandon_upload", async move {
            let client = self.pool.get().await?;
            let statement = if direct {
                ABANDON_DIRECT_UPLOAD
            } else {
                ABANDON_UPLOAD
            };
            self.sql(&client)
                .execute(statement, &[(&id, Type::TEXT), (&token, Type::TEXT)])
                .await?;
            Ok(())
        })
        .await
    }

    /// One chunk of an uploaded attachment (`None`: no such chunk, or the attachment went).
    pub(crate) async fn attachment_chunk(
        &self,
        id: &str,
        seq: i32,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.timed("attachment_chunk", async move {
            let client = self.pool.get().await?;
            Ok(self
                .sql(&client)
                .query_opt(
                    "SELECT data FROM attachment_chunks WHERE attachment_id = $1 AND seq = $2",
                    &[(&id, Type::TEXT), (&seq, Type::INT4)],
                )
                .await?
                .map(|row| row.get(0)))
        })
        .await
    }

    /// The whole bytes of the `user_id`'s uploaded attachments among `ids`, by id (for the
    /// model's input, which carries them whole anyway).
    pub(crate) async fn attachment_contents(
        &self,
        user_id: &str,
        ids: &[String],
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.timed("attachment_contents", async move {
            let client = self.pool.get().await?;
            Ok(self
                .sql(&client)
                .query(
                    "SELECT a.id, coalesce(string_agg(c.data, ''::bytea ORDER BY c.seq), ''::bytea)
                 FROM attachments a LEFT JOIN attachment_chunks c ON c.attachment_id = a.id
                 WHERE a.id = ANY($1) AND a.user_id = $2 AND a.uploaded_at IS NOT NULL
                 GROUP BY a.id",
                    &[(&ids, Type::TEXT_ARRAY), (&user_id, Type::TEXT)],
                )
                .await?
                .iter()
                .map(|row| (row.get(0), row.get(1)))
                .collect())
        })
        .await
    }

    /// Deletes the `user_id`'s attachment (its chunks go with it); false when there was none.
    pub(crate) async fn delete_attachment(
        &self,
        user_id: &str,
        id: &str,
    ) -> Result<bool, StoreError> {
        self.timed("delete_attachment", async move {
            let client = self.pool.get().await?;
            let deleted = self
                .sql(&client)
                .execute(
                    "DELETE FROM attachments WHERE id = $1 AND user_id = $2",
                    &[(&id, Type::TEXT), (&user_id, Type::TEXT)],
                )
                .await?;
            Ok(deleted == 1)
        })
        .await
    }

    /// Deletes uploads older than `age` that no message carries; returns how many.
    pub(crate) async fn delete_unused_attachments(&self, age: Duration) -> Result<u64, StoreError> {
        self.timed("delete_unused_attachments", async move {
            let client = self.pool.get().await?;
            let seconds = age.as_secs_f64();
            self.sql(&client)
                .execute(
                    "DELETE FROM attachments
                 WHERE thread_id IS NULL AND created_at < now() - make_interval(secs => $1)",
                    &[(&seconds, Type::FLOAT8)],
                )
                .await
        })
        .await
    }
}
