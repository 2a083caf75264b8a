//! The request envelope (protocol §1.1) and the params of all 16 operations (protocol §3).
//!
//! Parsing is two-step so each failure gets its own clear error: first the envelope (`type`,
//! `params`, `metadata`), then the params of that op. Unknown keys are ignored everywhere;
//! discriminators are required (protocol §1.6).

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::items::{InferenceOptions, UserMessageContent};
use super::page::{Order, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
use crate::ids::{ItemId, ThreadId};
use crate::text::shorten_for_display;

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

/// Params that address a thread say which.
trait Addressed {
    fn thread_id(&self) -> Option<&ThreadId> {
        None
    }
}

macro_rules! addressed {
    ($($params:ty),*) => {
        $(impl Addressed for $params {
            fn thread_id(&self) -> Option<&ThreadId> {
                Some(&self.thread_id)
            }
        })*
    };
}

addressed!(
    AddUserMessageParams,
    AddClientToolOutputParams,
    RetryAfterItemParams,
    CustomActionParams,
    AddStructuredInputParams,
    ThreadIdParams,
    ListItemsParams,
    UpdateThreadParams,
    FeedbackParams
);
impl Addressed for CreateThreadParams {}
impl Addressed for ListThreadsParams {}
impl Addressed for CreateAttachmentParams {}
impl Addressed for DeleteAttachmentParams {}
impl Addressed for TranscribeParams {}

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

/// `UserMessageInput` (protocol §3.1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UserMessageInput {
    pub content: Vec<UserMessageContent>,
    pub attachments: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quoted_text: Option<String>,
    pub inference_options: InferenceOptions,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CreateThreadParams {
    pub input: UserMessageInput,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AddUserMessageParams {
    pub thread_id: ThreadId,
    pub input: UserMessageInput,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AddClientToolOutputParams {
    pub thread_id: ThreadId,
    /// Any JSON, `null` included; a missing key is refused.
    #[serde(deserialize_with = "present_value")]
    pub result: Value,
}

/// Deserializes any value including `null` (serde would otherwise treat null as absent).
fn present_value<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
    Value::deserialize(d)
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RetryAfterItemParams {
    pub thread_id: ThreadId,
    pub item_id: ItemId,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CustomAction {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub payload: Value,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CustomActionParams {
    pub thread_id: ThreadId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_id: Option<ItemId>,
    pub action: CustomAction,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AddStructuredInputParams {
    pub thread_id: ThreadId,
    pub item_id: ItemId,
    pub input: Value,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ThreadIdParams {
    pub thread_id: ThreadId,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ListThreadsParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
    #[serde(default)]
    pub order: Order,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<ThreadId>,
}

impl ListThreadsParams {
    pub fn page_size(&self) -> Result<u32, String> {
        page_size(self.limit)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ListItemsParams {
    pub thread_id: ThreadId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
    #[serde(default)]
    pub order: Order,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<ItemId>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UpdateThreadParams {
    pub thread_id: ThreadId,
    pub title: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FeedbackKind {
    Positive,
    Negative,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeedbackParams {
    pub thread_id: ThreadId,
    pub item_ids: Vec<ItemId>,
    pub kind: FeedbackKind,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CreateAttachmentParams {
    pub name: String,
    pub size: i64,
    pub mime_type: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeleteAttachmentParams {
    pub attachment_id: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TranscribeParams {
    pub audio_base64: String,
    pub mime_type: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_create() {
        let body = br#"{"type":"threads.create","params":{"input":{"content":[{"type":"input_text","text":"Hi"}],"attachments":[],"inference_options":{}}},"extra":1}"#;
        let req = ChatKitRequest::parse(body).unwrap();
        assert_eq!(req.op.name(), "threads.create");
        assert!(req.op.is_streaming());
    }

    #[test]
    fn classifies_errors() {
        assert!(matches!(
            ChatKitRequest::parse(b"nope"),
            Err(RequestError::InvalidJson(_))
        ));
        assert!(matches!(
            ChatKitRequest::parse(b"[1]"),
            Err(RequestError::InvalidEnvelope(_))
        ));
        assert!(matches!(
            ChatKitRequest::parse(br#"{"type":"threads.explode","params":{}}"#),
            Err(RequestError::UnknownOperation(_))
        ));
        assert!(matches!(
            ChatKitRequest::parse(br#"{"type":"threads.get_by_id","params":{}}"#),
            Err(RequestError::InvalidParams { .. })
        ));
        assert!(matches!(
            ChatKitRequest::parse(br#"{"type":"threads.list"}"#),
            Err(RequestError::InvalidEnvelope(_))
        ));
        // A content part without its discriminator is refused (protocol §1.1).
        assert!(matches!(
            ChatKitRequest::parse(br#"{"type":"threads.create","params":{"input":{"content":[{"text":"Hi"}],"attachments":[],"inference_options":{}}}}"#),
            Err(RequestError::InvalidParams { .. })
        ));
        assert!(matches!(
            ChatKitRequest::parse(br#"{"type":"threads.list","params":{"limit":-1}}"#),
            Err(RequestError::InvalidParams { .. })
        ));
    }

    #[test]
    fn client_tool_output_accepts_null_but_not_missing() {
        let ok = br#"{"type":"threads.add_client_tool_output","params":{"thread_id":"thr_1","result":null}}"#;
        assert!(ChatKitRequest::parse(ok).is_ok());
        let missing =
            br#"{"type":"threads.add_client_tool_output","params":{"thread_id":"thr_1"}}"#;
        assert!(ChatKitRequest::parse(missing).is_err());
    }

    #[test]
    fn long_unknown_op_names_are_cut_on_a_character_boundary() {
        // Byte 64 falls inside "é": cutting there used to panic.
        let name = format!("{}é{}", "a".repeat(63), "z".repeat(100));
        let body = serde_json::json!({ "type": name, "params": {} }).to_string();
        match ChatKitRequest::parse(body.as_bytes()) {
            Err(RequestError::UnknownOperation(shown)) => {
                assert!(shown.len() <= MAX_ECHOED_BYTES);
                assert!(shown.starts_with(&"a".repeat(60)));
            }
            other => panic!("expected unknown_operation, got {other:?}"),
        }
    }

    #[test]
    fn serde_messages_quoting_client_text_are_bounded() {
        let kind = "𝄞".repeat(10_000);
        let body = serde_json::json!({ "type": "items.feedback", "params": {"thread_id": "thr_1", "item_ids": [], "kind": kind} }).to_string();
        match ChatKitRequest::parse(body.as_bytes()) {
            Err(RequestError::InvalidParams { message, .. }) => {
                assert!(message.len() <= MAX_MESSAGE_BYTES, "{}", message.len())
            }
            other => panic!("expected invalid_params, got {other:?}"),
        }
    }

    #[test]
    fn limit_zero_means_default() {
        assert_eq!(page_size(Some(0)).unwrap(), 20);
        assert_eq!(page_size(None).unwrap(), 20);
        assert!(page_size(Some(1001)).is_err());
    }
}

#[cfg(test)]
mod fuzz {
    //! Property tests of the request parser (bounded, run with the unit tests).
    use proptest::prelude::*;

    use super::*;

    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(serde_json::Value::from),
            hostile_string().prop_map(serde_json::Value::from),
            prop::sample::select(OPERATION_NAMES.to_vec()).prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(6, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
                prop::collection::btree_map(
                    prop::sample::select(vec![
                        "type",
                        "params",
                        "metadata",
                        "thread_id",
                        "input",
                        "content",
                        "text",
                        "limit",
                        "after",
                        "order",
                        "item_id",
                        "result",
                        "title",
                        "attachments",
                        "inference_options",
                        "kind",
                        "item_ids"
                    ]),
                    inner,
                    0..6
                )
                .prop_map(|m| serde_json::Value::Object(
                    m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
                )),
            ]
        })
    }

    /// Text as attackers send it: combining marks, 4-byte characters, NUL, RTL marks, quotes,
    /// backslashes, any other code point, at every length class from empty to tens of
    /// kilobytes (lengths around the 64-byte cuts included).
    pub(crate) fn hostile_string() -> impl Strategy<Value = String> {
        let chars = |len: std::ops::Range<usize>| {
            prop::collection::vec(hostile_char(), len).prop_map(String::from_iter)
        };
        prop_oneof![
            4 => chars(0..16),
            3 => chars(56..72),
            2 => chars(200..2_000),
            // Long text, up to the default body limit, from a repeated hostile run.
            1 => (chars(1..64), 100usize..4_000).prop_map(|(run, times)| run.repeat(times)),
        ]
    }

    fn hostile_char() -> impl Strategy<Value = char> {
        prop_oneof![
            3 => prop::sample::select(vec![
                'a', 'Z', '0', ' ', '"', '\\', '\'', '\0', '\n', '\u{7f}', 'é', '\u{301}',
                '\u{36f}', '\u{200f}', '\u{202e}', '\u{feff}', '\u{fffd}', '中', '\u{10ffff}',
                '😀', '𝄞', '\u{e0001}',
            ]),
            1 => any::<char>(),
        ]
    }

    /// Every op of `tests/fixtures/requests.jsonl`, each string in it (discriminators
    /// included, now and then) replaced by hostile text.
    fn hostile_request() -> impl Strategy<Value = serde_json::Value> {
        let templates: Vec<serde_json::Value> =
            include_str!("../../../tests/fixtures/requests.jsonl")
                .lines()
                .map(|line| serde_json::from_str(line).expect("fixture is JSON"))
                .collect();
        (
            prop::sample::select(templates),
            prop::collection::vec(hostile_string(), 12),
            prop::collection::vec(any::<bool>(), 12),
        )
            .prop_map(|(mut template, strings, replace)| {
                let mut strings = strings.into_iter().zip(replace).cycle();
                replace_strings(&mut template, &mut strings);
                template
            })
    }

    fn replace_strings(
        value: &mut serde_json::Value,
        strings: &mut impl Iterator<Item = (String, bool)>,
    ) {
        match value {
            serde_json::Value::String(text) => {
                if let Some((hostile, replace)) = strings.next() {
                    // Discriminators mostly stay, so most requests reach their op's params.
                    if replace || !(text.contains('.') || text.contains('_')) {
                        *text = hostile;
                    }
                }
            }
            serde_json::Value::Array(items) => {
                items.iter_mut().for_each(|v| replace_strings(v, strings))
            }
            serde_json::Value::Object(map) => {
                map.values_mut().for_each(|v| replace_strings(v, strings))
            }
            _ => {}
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn hostile_op_names_never_panic(name in hostile_string()) {
            let body = serde_json::json!({ "type": name, "params": {} }).to_string();
            let _ = ChatKitRequest::parse(body.as_bytes());
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = ChatKitRequest::parse(&bytes);
        }

        #[test]
        fn arbitrary_json_never_panics_and_accepted_requests_round_trip(value in json_value()) {
            let text = value.to_string();
            if let Ok(request) = ChatKitRequest::parse(text.as_bytes()) {
                // Whatever we accept, we can serialize and parse again to the same request.
                let again = serde_json::to_vec(&request).unwrap();
                prop_assert_eq!(ChatKitRequest::parse(&again).unwrap(), request);
            }
        }
    }

    proptest! {
        // Fewer cases: each request carries up to a dozen strings, some of hundreds of KiB.
        #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn hostile_text_in_every_field_of_every_op_never_panics(request in hostile_request()) {
            let text = request.to_string();
            if let Ok(parsed) = ChatKitRequest::parse(text.as_bytes()) {
                let again = serde_json::to_vec(&parsed).unwrap();
                prop_assert_eq!(ChatKitRequest::parse(&again).unwrap(), parsed);
            }
        }
    }
}
