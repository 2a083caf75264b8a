//! The request envelope (protocol §1.1) and the params of all 16 operations (protocol §3).
//!
//! Parsing is two-step so each failure gets its own clear error: first the envelope (`type`,
//! `params`, `metadata`), then the params of that op. Unknown keys are ignored everywhere;
//! discriminators are required (protocol §1.6). No string or key of the params may hold NUL
//! (`nul.rs`).

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::page::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
use crate::ids::ThreadId;
use crate::text::shorten_for_display;

mod nul;
mod params;
use params::Addressed;
pub use params::*;

/// Client text quoted back in an error (an unknown op name) is cut to this many bytes.
const MAX_ECHOED_BYTES: usize = 64;
/// Error messages are cut to this many bytes.
const MAX_MESSAGE_BYTES: usize = 256;

/// A parsed `/chatkit` request: the op with its params, plus the free-form metadata.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ChatKitRequest {
    #[serde(flatten)]
    pub op: Operation,
    pub metadata: Map<String, Value>,
}

/// How an op answers (protocol §1.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Server-Sent Events.
    Stream,
    /// One JSON body.
    Json,
}

/// The one table of operations: each line names the op as on the wire, its variant, its
/// params and how it answers. Adding an op is a line here, its params type, and its handler.
macro_rules! operations {
    ($($wire:literal => $variant:ident($params:ty), $answer:ident;)*) => {
        /// The 16 op names of protocol §1.2, each with its params.
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "type", content = "params")]
        pub enum Operation {
            $(#[serde(rename = $wire)] $variant($params),)*
        }

        /// Every op name, in the order of protocol §1.2.
        pub const OPERATION_NAMES: &[&str] = &[$($wire),*];

        impl Operation {
            pub fn name(&self) -> &'static str {
                match self {
                    $(Operation::$variant(_) => $wire,)*
                }
            }

            /// Streaming ops answer with SSE (protocol §1.2).
            pub fn answer(&self) -> Answer {
                match self {
                    $(Operation::$variant(_) => Answer::$answer,)*
                }
            }

            /// The op `name` with its params read from `params` (`None` for an unknown name).
            fn parse_params(name: &str, params: &str) -> Option<Result<Operation, serde_json::Error>> {
                match name {
                    $($wire => Some(serde_json::from_str::<$params>(params).map(Operation::$variant)),)*
                    _ => None,
                }
            }

            /// The thread the op addresses, if any (for logs).
            pub fn thread_id(&self) -> Option<&ThreadId> {
                match self {
                    $(Operation::$variant(params) => params.thread_id(),)*
                }
            }
        }
    };
}

operations! {
    "threads.create" => ThreadsCreate(CreateThreadParams), Stream;
    "threads.add_user_message" => ThreadsAddUserMessage(AddUserMessageParams), Stream;
    "threads.add_client_tool_output" => ThreadsAddClientToolOutput(AddClientToolOutputParams), Stream;
    "threads.retry_after_item" => ThreadsRetryAfterItem(RetryAfterItemParams), Stream;
    "threads.custom_action" => ThreadsCustomAction(CustomActionParams), Stream;
    "threads.add_structured_input" => ThreadsAddStructuredInput(AddStructuredInputParams), Stream;
    "threads.get_by_id" => ThreadsGetById(ThreadIdParams), Json;
    "threads.list" => ThreadsList(ListThreadsParams), Json;
    "items.list" => ItemsList(ListItemsParams), Json;
    "items.feedback" => ItemsFeedback(FeedbackParams), Json;
    "attachments.create" => AttachmentsCreate(CreateAttachmentParams), Json;
    "attachments.delete" => AttachmentsDelete(DeleteAttachmentParams), Json;
    "threads.update" => ThreadsUpdate(UpdateThreadParams), Json;
    "threads.delete" => ThreadsDelete(ThreadIdParams), Json;
    "input.transcribe" => InputTranscribe(TranscribeParams), Json;
    "threads.sync_custom_action" => ThreadsSyncCustomAction(CustomActionParams), Json;
}

impl Operation {
    pub fn is_streaming(&self) -> bool {
        self.answer() == Answer::Stream
    }
}

/// Why a request body was refused; each maps to a 400 with its own code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("request body is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("{0}")]
    InvalidEnvelope(String),
    #[error("unknown operation type \"{0}\"")]
    UnknownOperation(String),
    #[error("invalid params for {op}: {message}")]
    InvalidParams { op: String, message: String },
}

/// The envelope, with each field left as the raw JSON it was: the params are parsed once,
/// straight into their op's type (no intermediate tree of the whole body).
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "type", default, borrow, deserialize_with = "present")]
    op: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    params: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    metadata: Option<&'a RawValue>,
}

/// A field that is there, `null` included (serde would otherwise read `null` as absent).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// Whether raw JSON is an object (it was validated while parsing the envelope).
fn is_object(raw: &RawValue) -> bool {
    raw.get().starts_with('{')
}

impl ChatKitRequest {
    /// Parses and validates a raw request body.
    pub fn parse(body: &[u8]) -> Result<Self, RequestError> {
        let envelope: Envelope = serde_json::from_slice(body).map_err(|e| match e.classify() {
            serde_json::error::Category::Data => {
                RequestError::InvalidEnvelope("request body must be a JSON object".into())
            }
            _ => RequestError::InvalidJson(short_serde_message(&e)),
        })?;
        let op_name: String = match envelope.op {
            Some(raw) => serde_json::from_str(raw.get()).map_err(|_| {
                RequestError::InvalidEnvelope("field `type` must be a string".into())
            })?,
            None => return Err(RequestError::InvalidEnvelope("missing field `type`".into())),
        };
        if !OPERATION_NAMES.contains(&op_name.as_str()) {
            return Err(RequestError::UnknownOperation(shorten_for_display(
                &op_name,
                MAX_ECHOED_BYTES,
            )));
        }
        let metadata = match envelope.metadata {
            None => Map::new(),
            Some(raw) if raw.get() == "null" => Map::new(),
            Some(raw) if is_object(raw) => serde_json::from_str(raw.get())
                .map_err(|e| RequestError::InvalidEnvelope(short_serde_message(&e)))?,
            Some(_) => {
                return Err(RequestError::InvalidEnvelope(
                    "field `metadata` must be an object".into(),
                ))
            }
        };
        let params = match envelope.params {
            Some(raw) if is_object(raw) => raw,
            Some(_) => {
                return Err(RequestError::InvalidEnvelope(
                    "field `params` must be an object".into(),
                ))
            }
            None => {
                return Err(RequestError::InvalidEnvelope(
                    "missing field `params`".into(),
                ))
            }
        };
        let invalid = |message| RequestError::InvalidParams {
            op: op_name.clone(),
            message,
        };
        let op = Operation::parse_params(&op_name, params.get())
            .ok_or_else(|| RequestError::UnknownOperation(op_name.clone()))?
            .map_err(|e| invalid(short_serde_message(&e)))?;
        if let Some(problem) = nul::nul_problem(params) {
            return Err(invalid(problem));
        }
        op.validate().map_err(invalid)?;
        Ok(ChatKitRequest { op, metadata })
    }
}

/// serde's message without the line/column suffix, which says nothing useful to a client,
/// and bounded: it may quote the client's own text (an unknown variant, say).
fn short_serde_message(error: &serde_json::Error) -> String {
    let text = error.to_string();
    let text = match text.rfind(" at line ") {
        Some(cut) => &text[..cut],
        None => &text,
    };
    shorten_for_display(text, MAX_MESSAGE_BYTES)
}

impl Operation {
    /// Checks beyond types (ids were checked while parsing): limits in range.
    fn validate(&self) -> Result<(), String> {
        match self {
            Operation::ThreadsList(p) => p.page_size().map(drop),
            Operation::ItemsList(p) => page_size(p.limit).map(drop),
            _ => Ok(()),
        }
    }
}

/// `limit`: null or 0 means 20 (protocol §13.7); negative or over 1000 is refused.
pub fn page_size(limit: Option<i64>) -> Result<u32, String> {
    match limit {
        None | Some(0) => Ok(DEFAULT_PAGE_SIZE),
        Some(n) if n < 0 => Err("`limit` must not be negative".into()),
        Some(n) if n > MAX_PAGE_SIZE as i64 => {
            Err(format!("`limit` must be at most {MAX_PAGE_SIZE}"))
        }
        Some(n) => Ok(n as u32),
    }
}

#[cfg(test)]
mod tests;
