//! The ChatKit wire protocol (`specs/protocol.md`): requests, threads, items,
//! pages and stream events, serialized exactly as the reference SDK does (protocol §1.5).

pub mod attachment;
pub mod events;
pub mod items;
pub mod page;
pub mod requests;
pub mod structured_input;
pub mod tag;
pub mod thread;
pub mod time;

pub use attachment::{Attachment, AttachmentKind, UploadDescriptor};
pub use events::{ErrorCode, StreamOptions, ThreadItemUpdate, ThreadStreamEvent};
pub use items::*;
pub use page::{Order, Page};
pub use requests::{ChatKitRequest, Operation, RequestError};
pub use structured_input::{
    StructuredInput, StructuredInputAnswer, StructuredInputItem, StructuredInputKind,
    StructuredInputStatus, StructuredInputSubmission,
};
pub use thread::{Thread, ThreadMeta, ThreadStatus};
pub use time::Timestamp;

/// Compact JSON of a response body or event.
pub fn to_json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("protocol types always serialize")
}
