//! The engine's error enum. The edge maps each variant to an HTTP status and error code
//! (`src/http/error.rs`); messages never carry SQL, paths or other internals.

use crate::deadline::DeadlinePassed;
use crate::store::StoreError;

#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    /// Unknown thread, or a thread of another user: the two look the same (no existence leak).
    #[error("thread not found")]
    ThreadNotFound,
    #[error("item not found")]
    ItemNotFound,
    /// An `after` cursor that names nothing visible.
    #[error("cursor not found")]
    CursorNotFound,
    /// A response is already streaming on this thread.
    #[error("a response is already in progress on this thread")]
    ThreadBusy,
    /// The thread's status refuses new input (locked or closed).
    #[error("thread is {status}{}", reason.as_ref().map(|r| format!(": {r}")).unwrap_or_default())]
    ThreadNotActive {
        status: InactiveStatus,
        reason: Option<String>,
    },
    /// The request is well-formed but not acceptable in the thread's current state.
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    InvalidInput(String),
    /// Unknown attachment, or another user's: the two look the same.
    #[error("attachment not found")]
    AttachmentNotFound,
    /// The file's type is not accepted, or its content is not what its type says.
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("the file is larger than the {0} bytes allowed")]
    AttachmentTooLarge(u64),
    /// An upload URL is good for one upload.
    #[error("this attachment's bytes were uploaded already")]
    AlreadyUploaded,
    /// The transcription provider could not make sense of the audio (its words, cut short).
    #[error("the audio could not be transcribed: {0}")]
    InvalidAudio(String),
    /// Another upload of the attachment is being received.
    #[error("another upload of this attachment is in progress")]
    UploadInProgress,
    /// The upload's body broke off or is not a well-formed form.
    #[error("the upload could not be read: {0}")]
    UploadInterrupted(String),
    /// The user's attachments would take more than `attachments.max_bytes_per_user`.
    #[error("your attachments would take more than the {0} bytes allowed; delete some first")]
    QuotaExceeded(u64),
    /// A signed URL that expired or was not signed by us.
    #[error("{0}")]
    BadSignature(crate::attachments::signing::SignatureError),
    /// A widget action whose sender is not a widget item (protocol §3.5).
    #[error("item {0} is not a widget")]
    NotAWidget(String),
    /// An action type no `[[widget_actions]]` entry maps to a tool.
    #[error("{0}")]
    UnknownAction(String),
    /// The sender widget holds no such action (a forged or altered action).
    #[error("{0}")]
    ActionNotInWidget(String),
    /// A sync widget action's tool failed (details are logged).
    #[error("{0}")]
    ActionFailed(String),
    /// The request's `Host` (where attachment URLs point) is not a host name.
    #[error("the Host header is not a host name")]
    BadHost,
    #[error("operation {0} is not supported by this server")]
    Unsupported(&'static str),
    /// A dependency (database) is down: retry later.
    #[error("service temporarily unavailable")]
    Unavailable(String),
    /// A bug; details are logged, not shown.
    #[error("internal error")]
    Internal(String),
    /// The actor retired between routing and delivery: route again. Never leaves the engine.
    #[error("thread actor retired")]
    Retired,
}

/// Why a thread takes no new input (protocol §2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InactiveStatus {
    Locked,
    Closed,
}

impl std::fmt::Display for InactiveStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            InactiveStatus::Locked => "locked",
            InactiveStatus::Closed => "closed",
        })
    }
}

impl From<StoreError> for EngineError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(m) | StoreError::TimedOut(m) => EngineError::Unavailable(m),
            StoreError::CursorNotFound => EngineError::CursorNotFound,
            StoreError::LeaseLost => EngineError::Unavailable("lease lost".into()),
            // Like any attachment id a message may not carry (engine/attachments.rs).
            StoreError::AttachmentTaken => EngineError::InvalidInput(
                "an attachment of this message belongs to another thread or was deleted".into(),
            ),
            StoreError::Query(m) | StoreError::Corrupt(m) => EngineError::Internal(m),
        }
    }
}

impl From<DeadlinePassed> for EngineError {
    fn from(passed: DeadlinePassed) -> Self {
        EngineError::Unavailable(format!("the request's deadline passed {}", passed.0))
    }
}

impl From<actix::MailboxError> for EngineError {
    fn from(error: actix::MailboxError) -> Self {
        match error {
            actix::MailboxError::Closed => EngineError::Retired,
            actix::MailboxError::Timeout => EngineError::Unavailable("actor timed out".into()),
        }
    }
}
