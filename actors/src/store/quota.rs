//! The per-user attachment quota (`attachments.max_bytes_per_user`) as one step with the
//! write it allows: the user's bytes are counted and the attachment is created (or a direct
//! upload's reservation grown) in one transaction that first takes a transaction-level
//! advisory lock keyed on the user. Two requests of one user therefore take turns, and the
//! count, a statement of its own after the lock (READ COMMITTED: a fresh snapshot per
//! statement), sees what the previous holder committed. Nothing outlives the transaction, so
//! this works behind PgBouncer in transaction mode too.

use tokio_postgres::types::Type;

use super::attachments::NewAttachment;
use super::{Store, StoreError};

/// Waits for the user's turn. The key is the schema and the user id hashed into the second
/// half of a two-part key whose first half says what it locks (other deployments sharing the
/// database lock other keys; a hash collision only makes two users wait for each other).
const LOCK_USER: &str =
    "SELECT pg_advisory_xact_lock(1128480081, hashtext(current_schema() || '/' || $1))";

// Created only while the user's bytes, this one's included, stay within the quota $8, and
// the user is not at the quota already (a direct upload starts with 0 bytes).
const INSERT_WITHIN_QUOTA: &str = "
    WITH used AS (
      SELECT coalesce(sum(greatest(declared_size, coalesce(size, 0))), 0)::bigint AS bytes
      FROM attachments WHERE user_id = $2)
    INSERT INTO attachments
      (id, user_id, name, mime_type, kind, declared_size, upload_token, upload_started)
    SELECT $1, $2, $3, $4, $5, $6, $7, CASE WHEN $7::text IS NULL THEN NULL ELSE now() END
    FROM used WHERE used.bytes + $6 <= $8 AND used.bytes < $8";

// A direct upload claimed by $2 reserves $4 bytes in all (the bytes stored once the chunk
// about to be written is), if the user's other attachments leave room under the quota $5.
const RESERVE_UPLOAD: &str = "
    WITH used AS (
      SELECT coalesce(sum(greatest(declared_size, coalesce(size, 0))), 0)::bigint AS bytes
      FROM attachments WHERE user_id = $3 AND id <> $1)
    UPDATE attachments SET declared_size = $4
    FROM used
    WHERE id = $1 AND upload_token = $2 AND used.bytes + $4 <= $5";

impl Store {
    /// Creates the attachment if the user's attachments, it included, take at most `quota`
    /// bytes; false (nothing stored) otherwise.
    pub(crate) async fn insert_attachment_within(
        &self,
        new: &NewAttachment<'_>,
        quota: i64,
    ) -> Result<bool, StoreError> {
        self.timed("insert_attachment_within", async move {
            let mut client = self.pool.get().await?;
            let tx = client.transaction().await?;
            let sql = self.sql_in(&tx);
            sql.execute(LOCK_USER, &[(&new.user_id, Type::TEXT)])
                .await?;
            let inserted = sql
                .execute(
                    INSERT_WITHIN_QUOTA,
                    &[
                        (&new.id, Type::TEXT),
                        (&new.user_id, Type::TEXT),
                        (&new.name, Type::TEXT),
                        (&new.mime_type, Type::TEXT),
                        (&new.kind.as_str(), Type::TEXT),
                        (&new.declared_size, Type::INT8),
                        (&new.upload_token, Type::TEXT),
                        (&quota, Type::INT8),
                    ],
                )
                .await?;
            tx.commit().await?;
            Ok(inserted == 1)
        })
        .await
    }

    /// Grows the reservation of the direct upload `id`, claimed by `token`, to `bytes` if the
    /// user's attachments then take at most `quota` bytes; false when they would not (or the
    /// claim was lost). Called before each chunk is written, so a user's stored bytes never
    /// exceed the quota, even while uploads run.
    pub(crate) async fn reserve_upload(
        &self,
        id: &str,
        token: &str,
        user_id: &str,
        bytes: i64,
        quota: i64,
    ) -> Result<bool, StoreError> {
        self.timed("reserve_upload", async move {
            let mut client = self.pool.get().await?;
            let tx = client.transaction().await?;
            let sql = self.sql_in(&tx);
            sql.execute(LOCK_USER, &[(&user_id, Type::TEXT)]).await?;
            let reserved = sql
                .execute(
                    RESERVE_UPLOAD,
                    &[
                        (&id, Type::TEXT),
                        (&token, Type::TEXT),
                        (&user_id, Type::TEXT),
                        (&bytes, Type::INT8),
                        (&quota, Type::INT8),
                    ],
                )
                .await?;
            tx.commit().await?;
            Ok(reserved == 1)
        })
        .await
    }
}
