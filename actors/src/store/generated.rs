//! Files the model made (generated images, code interpreter files), stored like uploads (sql/0006) in one statement:
//! the row, already uploaded and joined to its thread, and its bytes in chunks.

use tokio_postgres::types::Type;

use super::{Store, StoreError, CHUNK_BYTES};
use crate::protocol::AttachmentKind;

/// A file the model made, for the thread's owner.
pub(crate) struct GeneratedFile<'a> {
    pub id: &'a str,
    pub user_id: &'a str,
    pub thread_id: &'a str,
    pub name: &'a str,
    pub mime_type: &'a str,
    pub kind: AttachmentKind,
    pub bytes: &'a [u8],
}

// The row and every chunk in one statement (one transaction): a reader never sees a row
// without its bytes.
const INSERT_GENERATED: &str = "
    WITH file AS (
        INSERT INTO attachments
          (id, user_id, thread_id, name, mime_type, kind, declared_size, size, uploaded_at)
        VALUES ($1, $2, $3, $4, $5, $8, $6, $6, now())
        RETURNING id)
    INSERT INTO attachment_chunks (attachment_id, seq, data)
    SELECT file.id, (chunk.ord - 1)::int, chunk.data
    FROM file, unnest($7::bytea[]) WITH ORDINALITY AS chunk(data, ord)";

impl Store {
    /// Stores a generated image as an attachment of its thread.
    pub(crate) async fn insert_generated_file(
        &self,
        file: &GeneratedFile<'_>,
    ) -> Result<(), StoreError> {
        self.timed("insert_generated_file", async move {
            let client = self.pool.get().await?;
            let size = file.bytes.len() as i64;
            let chunks: Vec<&[u8]> = file.bytes.chunks(CHUNK_BYTES).collect();
            self.sql(&client)
                .execute(
                    INSERT_GENERATED,
                    &[
                        (&file.id, Type::TEXT),
                        (&file.user_id, Type::TEXT),
                        (&file.thread_id, Type::TEXT),
                        (&file.name, Type::TEXT),
                        (&file.mime_type, Type::TEXT),
                        (&size, Type::INT8),
                        (&chunks, Type::BYTEA_ARRAY),
                        (&file.kind.as_str(), Type::TEXT),
                    ],
                )
                .await?;
            Ok(())
        })
        .await
    }
}
