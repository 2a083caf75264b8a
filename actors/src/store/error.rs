//! Errors of the store layer. Messages here are for logs only; the edge never shows them.

use deadpool_postgres::PoolError;

#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or the connection broke: retryable, 503 at the edge.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The operation did not finish within `database.operation_timeout_secs` (or no pooled
    /// connection came free in time): the database stalls. 503 at the edge like
    /// `Unavailable`, but not worth an immediate retry, which would only wait as long again.
    #[error("database unavailable: {0}")]
    TimedOut(String),
    /// A statement failed for another reason (constraint, bug).
    #[error("database query failed: {0}")]
    Query(String),
    /// A paging cursor that names no record visible to the caller.
    #[error("cursor not found")]
    CursorNotFound,
    /// A write carried a fencing token that is no longer the thread's: another instance owns
    /// the thread now.
    #[error("the thread's lease is held by another instance")]
    LeaseLost,
    /// A message named an attachment that another thread took meanwhile, or that is gone:
    /// its write was not stored.
    #[error("an attachment of the message belongs to another thread or is gone")]
    AttachmentTaken,
    /// Stored JSON that no longer parses: a bug or a manual edit.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

/// What `leases_held` (sql/0007) raises when a write's thread is leased by another instance.
const LEASE_LOST_SQLSTATE: &str = "CK001";
/// What `attachments_linked` (sql/0008) raises when a message's attachment went elsewhere.
const ATTACHMENT_TAKEN_SQLSTATE: &str = "CK002";

impl From<tokio_postgres::Error> for StoreError {
    fn from(error: tokio_postgres::Error) -> Self {
        match error.code().map(|code| code.code()) {
            Some(LEASE_LOST_SQLSTATE) => return StoreError::LeaseLost,
            Some(ATTACHMENT_TAKEN_SQLSTATE) => return StoreError::AttachmentTaken,
            _ => {}
        }
        // Connection trouble (08…), operator intervention such as a terminated backend or a
        // shutting-down server (57…), and resource exhaustion (53…) are transient; so is a
        // write refused by a read-only server (25006): a standby reached during a failover
        // (through a pooler not yet pointed at the new primary).
        let transient = match error.code() {
            None => true,
            Some(code) => {
                matches!(&code.code()[..2], "08" | "57" | "53")
                    || *code == tokio_postgres::error::SqlState::READ_ONLY_SQL_TRANSACTION
            }
        };
        // tokio-postgres shows a server error as just "db error": add its code and message
        // (for the logs; the edge never shows them).
        let message = match error.as_db_error() {
            Some(db) => format!("{error}: {} {}", db.code().code(), db.message()),
            None => error.to_string(),
        };
        if error.is_closed() || transient {
            StoreError::Unavailable(message)
        } else {
            StoreError::Query(message)
        }
    }
}

impl From<PoolError> for StoreError {
    fn from(error: PoolError) -> Self {
        match error {
            PoolError::Timeout(_) => StoreError::TimedOut(error.to_string()),
            other => StoreError::Unavailable(other.to_string()),
        }
    }
}

impl StoreError {
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_) | StoreError::TimedOut(_))
    }

    /// A broken connection (the pool opens another): worth one immediate retry. Not a
    /// timeout: the database is stalled and a retry would wait as long again.
    pub fn is_broken_connection(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}
