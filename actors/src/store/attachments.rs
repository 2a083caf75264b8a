//! The `attachments` table (sql/0006): metadata and bytes, and the URL signing key kept in
//! the database. Every read of an attachment is scoped to its owner by the caller of these
//! functions; none of them returns bytes without an owner or a checked signature upstream.

use std::time::Duration;

use super::{Store, StoreError};
use crate::protocol::AttachmentKind;

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
    pub uploaded: bool,
}

/// A new attachment.
pub(crate) struct NewAttachment<'a> {
    pub id: &'a str,
    pub user_id: &'a str,
    pub name: &'a str,
    pub mime_type: &'a str,
    pub kind: AttachmentKind,
    pub declared_size: i64,
    /// The bytes when they come with the request (direct upload).
    pub content: Option<&'a [u8]>,
}

/// How storing an upload's bytes went.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum UploadStored {
    Stored,
    /// The bytes were sent before: an upload URL is good for one upload.
    AlreadyUploaded,
    Missing,
}

const COLUMNS: &str =
    "id, user_id, thread_id, name, mime_type, kind, declared_size, content IS NOT NULL";

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
        uploaded: row.get(7),
    })
}

impl Store {
    /// The key that signs URLs when the configuration has none: created once per database by
    /// whichever instance starts first, read by all.
    pub async fn url_signing_key(&self) -> Result<Vec<u8>, StoreError> {
        let client = self.pool.get().await?;
        let fresh: [u8; 32] = rand::random();
        client
            .execute(
                "INSERT INTO url_signing_key (id, key) VALUES (1, $1) ON CONFLICT (id) DO NOTHING",
                &[&fresh.as_slice()],
            )
            .await?;
        let row = client
            .query_one("SELECT key FROM url_signing_key WHERE id = 1", &[])
            .await?;
        Ok(row.get(0))
    }

    pub(crate) async fn insert_attachment(
        &self,
        new: &NewAttachment<'_>,
    ) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached(
                "INSERT INTO attachments (id, user_id, name, mime_type, kind, declared_size, content, uploaded_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, CASE WHEN $7::bytea IS NULL THEN NULL ELSE now() END)",
            )
            .await?;
        client
            .execute(
                &stmt,
                &[
                    &new.id,
                    &new.user_id,
                    &new.name,
                    &new.mime_type,
                    &new.kind.as_str(),
                    &new.declared_size,
                    &new.content,
                ],
            )
            .await?;
        Ok(())
    }

    /// An attachment's row, whoever owns it (the caller checks).
    pub(crate) async fn attachment(&self, id: &str) -> Result<Option<AttachmentRow>, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached(&format!("SELECT {COLUMNS} FROM attachments WHERE id = $1"))
            .await?;
        client
            .query_opt(&stmt, &[&id])
            .await?
            .as_ref()
            .map(row_to_attachment)
            .transpose()
    }

    /// The rows of `ids` that belong to `user_id` (others' and unknown ones are left out).
    pub(crate) async fn user_attachments(
        &self,
        user_id: &str,
        ids: &[String],
    ) -> Result<Vec<AttachmentRow>, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM attachments WHERE id = ANY($1) AND user_id = $2"
            ))
            .await?;
        client
            .query(&stmt, &[&ids, &user_id])
            .await?
            .iter()
            .map(row_to_attachment)
            .collect()
    }

    /// Stores the bytes of a two-phase upload, once.
    pub(crate) async fn store_upload(
        &self,
        id: &str,
        content: &[u8],
    ) -> Result<UploadStored, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached(
                "WITH target AS (SELECT id, content IS NOT NULL AS uploaded FROM attachments WHERE id = $1),
                      stored AS (UPDATE attachments SET content = $2, uploaded_at = now()
                                 WHERE id = $1 AND content IS NULL RETURNING id)
                 SELECT (SELECT uploaded FROM target), EXISTS (SELECT 1 FROM stored)",
            )
            .await?;
        let row = client.query_one(&stmt, &[&id, &content]).await?;
        let uploaded_before: Option<bool> = row.get(0);
        let stored: bool = row.get(1);
        Ok(match (uploaded_before, stored) {
            (_, true) => UploadStored::Stored,
            (Some(_), false) => UploadStored::AlreadyUploaded,
            (None, false) => UploadStored::Missing,
        })
    }

    /// An attachment's bytes and row (`None`: absent or not uploaded).
    pub(crate) async fn attachment_bytes(
        &self,
        id: &str,
    ) -> Result<Option<(AttachmentRow, Vec<u8>)>, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached(&format!(
                "SELECT {COLUMNS}, content FROM attachments WHERE id = $1 AND content IS NOT NULL"
            ))
            .await?;
        match client.query_opt(&stmt, &[&id]).await? {
            Some(row) => Ok(Some((row_to_attachment(&row)?, row.get(8)))),
            None => Ok(None),
        }
    }

    /// The bytes of the `user_id`'s attachments among `ids`, by id.
    pub(crate) async fn attachment_contents(
        &self,
        user_id: &str,
        ids: &[String],
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached(
                "SELECT id, content FROM attachments
                 WHERE id = ANY($1) AND user_id = $2 AND content IS NOT NULL",
            )
            .await?;
        Ok(client
            .query(&stmt, &[&ids, &user_id])
            .await?
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect())
    }

    /// Deletes the `user_id`'s attachment; false when there was none.
    pub(crate) async fn delete_attachment(
        &self,
        user_id: &str,
        id: &str,
    ) -> Result<bool, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached("DELETE FROM attachments WHERE id = $1 AND user_id = $2")
            .await?;
        Ok(client.execute(&stmt, &[&id, &user_id]).await? == 1)
    }

    /// Deletes uploads older than `age` that no message carries; returns how many.
    pub(crate) async fn delete_unused_attachments(&self, age: Duration) -> Result<u64, StoreError> {
        let client = self.pool.get().await?;
        let seconds = age.as_secs_f64();
        Ok(client
            .execute(
                "DELETE FROM attachments
                 WHERE thread_id IS NULL AND created_at < now() - make_interval(secs => $1)",
                &[&seconds],
            )
            .await?)
    }
}
