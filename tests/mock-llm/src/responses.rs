//! The Responses API (`POST /v1/responses`), an extension beyond the reference: the request's
//! `input` items are read into the same reply rules as Chat Completions (plus `cite`), and the
//! reply goes out as Server-Sent Events (`event: <type>` + `data: <json>`) or, without
//! `"stream": true`, as one `response` object. The README lists every event and field.
//!
//! Events are compact JSON with raw UTF-8, like the Chat Completions chunks; the non-streamed
//! object goes through `json.dumps` defaults, like every other non-streamed body of this mock.

use std::ops::Range;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::error::ErrorInternalServerError;
use bytes::Bytes;
use futures::Stream;

use crate::cli::Config;
use crate::ids::uuid4_hex24;
use crate::json::{self, Object, Value};
use crate::pytext;
use crate::script::{self, Api, Crash, Reply, ReplyKind, Text, ToolCall, Words, MIDFAIL_PAUSE};

/// With no delay, events are batched into writes of about this size.
const BATCH_BYTES: usize = 32 * 1024;

/// `include` entry that adds `encrypted_content` to reasoning items.
const INCLUDE_ENCRYPTED: &str = "reasoning.encrypted_content";

/// The request's `input`: a string is one user message.
pub enum Input<'a> {
    Text(&'a str),
    Items(&'a [Value]),
}

/// Why a JSON object body cannot be answered (HTTP 400).
#[derive(Debug, PartialEq, Eq)]
pub enum InvalidInput {
    /// No `input`, or `"input": null`.
    Missing,
    /// `input` is neither a string nor an array.
    WrongType,
}

pub fn input_of(body: &Object) -> Result<Input<'_>, InvalidInput> {
    match body.get("input") {
        None | Some(Value::Null) => Err(InvalidInput::Missing),
        Some(Value::String(s)) => Ok(Input::Text(s)),
        Some(Value::Array(items)) => Ok(Input::Items(items)),
        Some(_) => Err(InvalidInput::WrongType),
    }
}

/// Text of a Responses content or `function_call_output.output`: a string, or the
/// concatenated `text` of its `input_text` / `output_text` parts.
fn content_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => {
            let mut out = String::new();
            for part in parts.iter().filter_map(Value::as_object) {
                let kind = part.get("type").and_then(Value::as_str);
                if matches!(kind, Some("input_text" | "output_text")) {
                    if let Some(text) = part.get("text").and_then(Value::as_str) {
                        out.push_str(text);
                    }
                }
            }
            out
        }
        _ => String::new(),
    }
}

fn item_type(item: &Object) -> Option<&str> {
    item.get("type").and_then(Value::as_str)
}

/// A message item: `type` "message", or no `type` at all, and a string `role`.
fn message_role(item: &Object) -> Option<&str> {
    let typed = match item.get("type") {
        None => true,
        Some(t) => t.as_str() == Some("message"),
    };
    typed.then(|| item.get("role").and_then(Value::as_str))?
}

/// Names of the offered function tools: `{"type": "function", "name": …}` (flat).
fn offered_tools(body: &Object) -> Vec<&str> {
    body.get("tools")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(Value::as_object)
        .filter(|t| item_type(t) == Some("function"))
        .filter_map(|t| t.get("name")?.as_str())
        .collect()
}

/// The reply rules applied to the input: the last item a `function_call_output` → "Done: …";
/// otherwise the last user message's text decides.
pub fn plan_response(body: &Object, input: &Input<'_>, cfg: &Config) -> Result<Reply, Crash> {
    let tools = offered_tools(body);
    let offered = |name: &str| tools.contains(&name);
    let user_text = match input {
        Input::Text(text) => (*text).to_owned(),
        Input::Items(items) => {
            let last = items.last().and_then(Value::as_object);
            if let Some(last) = last.filter(|i| item_type(i) == Some("function_call_output")) {
                return Ok(script::done_reply(&content_text(last.get("output")), cfg));
            }
            items
                .iter()
                .rev()
                .filter_map(Value::as_object)
                .find(|i| message_role(i) == Some("user"))
                .map(|m| content_text(m.get("content")))
                .unwrap_or_default()
        }
    };
    script::plan_for_user_text(&user_text, offered, Api::Responses, cfg)
}

/// The last user message's text, unless the last item is a tool output (rule 1).
pub fn last_user_text(input: &Input<'_>) -> Option<String> {
    match input {
        Input::Text(text) => Some((*text).to_owned()),
        Input::Items(items) => {
            let last = items.last().and_then(Value::as_object);
            if last.is_some_and(|i| item_type(i) == Some("function_call_output")) {
                return None;
            }
            items
                .iter()
                .rev()
                .filter_map(Value::as_object)
                .find(|i| message_role(i) == Some("user"))
                .map(|m| content_text(m.get("content")))
        }
    }
}

/// `input_tokens`: whitespace-separated words of `instructions`, of every message's text and
/// of every `function_call_output`'s output (as `prompt_tokens` counts every message).
pub fn input_tokens(body: &Object, input: &Input<'_>) -> u64 {
    let words = |s: &str| pytext::count_words(s) as u64;
    let instructions = body
        .get("instructions")
        .and_then(Value::as_str)
        .map_or(0, words);
    instructions
        + match input {
            Input::Text(text) => words(text),
            Input::Items(items) => items
                .iter()
                .filter_map(Value::as_object)
                .map(|item| {
                    if message_role(item).is_some() {
                        words(&content_text(item.get("content")))
                    } else if item_type(item) == Some("function_call_output") {
                        words(&content_text(item.get("output")))
                    } else {
                        0
                    }
                })
                .sum(),
        }
}

/// One output item of the reply.
enum Item {
    Reasoning {
        id: String,
        parts: [Words; 2],
        encrypted: Option<String>,
    },
    Message {
        id: String,
        text: Text,
        /// The whole text (`"".join(pieces)`), built once.
        full: String,
        cite: bool,
    },
    Call {
        id: String,
        call: ToolCall,
        pieces: Vec<Range<usize>>,
    },
}

/// One event of the stream; the numbers are the output index, then the summary part / piece.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Ev {
    Created,
    InProgress,
    ItemAdded(usize),
    SummaryPartAdded(usize, usize),
    SummaryDelta(usize, usize, usize),
    SummaryTextDone(usize, usize),
    SummaryPartDone(usize, usize),
    ContentPartAdded(usize),
    TextDelta(usize, usize),
    AnnotationAdded(usize),
    TextDone(usize),
    ContentPartDone(usize),
    ArgsDelta(usize, usize),
    ArgsDone(usize),
    ItemDone(usize),
    Completed,
    /// midfail: pause, then fail the body so actix drops the connection mid-transfer.
    Abort,
}

/// Everything a reply sends, decided up front.
pub struct ResponsePlan {
    id: String,
    created_at: u64,
    model: String,
    items: Vec<Item>,
    events: Vec<Ev>,
    input_tokens: u64,
    output_tokens: u64,
    reasoning_tokens: u64,
    delay: Duration,
}

fn obj<const N: usize>(pairs: [(&str, Value); N]) -> Object {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

impl ResponsePlan {
    /// The plan of a reply (not `Fail`, which is answered with HTTP 500).
    pub fn new(reply: Reply, body: &Object, input_tokens: u64, cfg: &Config) -> Self {
        let encrypted = body
            .get("include")
            .and_then(Value::as_array)
            .is_some_and(|inc| inc.iter().any(|v| v.as_str() == Some(INCLUDE_ENCRYPTED)));
        let message = |text: Text, cite: bool| Item::Message {
            id: format!("msg_{}", uuid4_hex24()),
            full: text.joined(),
            text,
            cite,
        };
        let mut midfail = false;
        let items = match reply.kind {
            ReplyKind::Text(text) => vec![message(text, false)],
            ReplyKind::Cite(text) => vec![message(text, true)],
            ReplyKind::Midfail(text) => {
                midfail = true;
                vec![message(text, false)]
            }
            ReplyKind::Think { subject, text } => {
                let [a, b] = script::summary_parts(&subject);
                vec![
                    Item::Reasoning {
                        id: format!("rs_{}", uuid4_hex24()),
                        parts: [Words::new(a), Words::new(b)],
                        encrypted: encrypted.then(|| format!("enc_{}", uuid4_hex24())),
                    },
                    message(text, false),
                ]
            }
            ReplyKind::ToolCalls(calls) => calls
                .into_iter()
                .map(|call| Item::Call {
                    id: format!("fc_{}", uuid4_hex24()),
                    pieces: call.argument_ranges(),
                    call,
                })
                .collect(),
            ReplyKind::Fail => unreachable!("fail is answered with HTTP 500"),
        };

        let mut events = vec![Ev::Created, Ev::InProgress];
        let (mut output_tokens, mut reasoning_tokens) = (0u64, 0u64);
        for (k, item) in items.iter().enumerate() {
            events.push(Ev::ItemAdded(k));
            match item {
                Item::Reasoning { parts, .. } => {
                    for (i, part) in parts.iter().enumerate() {
                        events.push(Ev::SummaryPartAdded(k, i));
                        events.extend((0..part.count()).map(|j| Ev::SummaryDelta(k, i, j)));
                        events.push(Ev::SummaryTextDone(k, i));
                        events.push(Ev::SummaryPartDone(k, i));
                        reasoning_tokens += part.count() as u64;
                    }
                }
                Item::Message { text, cite, .. } => {
                    events.push(Ev::ContentPartAdded(k));
                    events.extend((0..text.piece_count()).map(|j| Ev::TextDelta(k, j)));
                    output_tokens += text.piece_count() as u64;
                    if midfail {
                        events.push(Ev::Abort);
                        break;
                    }
                    if *cite {
                        events.push(Ev::AnnotationAdded(k));
                    }
                    events.push(Ev::TextDone(k));
                    events.push(Ev::ContentPartDone(k));
                }
                Item::Call { pieces, .. } => {
                    events.extend((0..pieces.len()).map(|j| Ev::ArgsDelta(k, j)));
                    events.push(Ev::ArgsDone(k));
                    output_tokens += pieces.len() as u64;
                }
            }
            events.push(Ev::ItemDone(k));
        }
        if !midfail {
            events.push(Ev::Completed);
        }
        ResponsePlan {
            id: format!("resp_{}", uuid4_hex24()),
            created_at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            model: cfg.model.clone(),
            items,
            events,
            input_tokens,
            output_tokens: output_tokens + reasoning_tokens,
            reasoning_tokens,
            delay: reply.delay,
        }
    }

    pub fn is_midfail(&self) -> bool {
        self.events.last() == Some(&Ev::Abort)
    }

    /// The pause a non-streamed reply takes: the stream's, one delay per event after the first.
    pub fn total_delay(&self) -> Duration {
        let sent = self.events.iter().filter(|e| **e != Ev::Abort).count();
        let gaps = u32::try_from(sent.saturating_sub(1)).unwrap_or(u32::MAX);
        self.delay.saturating_mul(gaps)
    }

    /// The `response` object; `done` adds the output items and the usage.
    fn response(&self, done: bool) -> Value {
        let mut r = obj([
            ("id", self.id.as_str().into()),
            ("object", "response".into()),
            ("created_at", self.created_at.into()),
            (
                "status",
                if done { "completed" } else { "in_progress" }.into(),
            ),
            ("model", self.model.as_str().into()),
        ]);
        if !done {
            r.insert("output".into(), Vec::<Value>::new().into());
            return r.into();
        }
        let output = (0..self.items.len()).map(|k| self.item_done(k)).collect();
        r.insert("output".into(), Value::Array(output));
        r.insert(
            "usage".into(),
            obj([
                ("input_tokens", self.input_tokens.into()),
                (
                    "input_tokens_details",
                    obj([("cached_tokens", 0u64.into())]).into(),
                ),
                ("output_tokens", self.output_tokens.into()),
                (
                    "output_tokens_details",
                    obj([("reasoning_tokens", self.reasoning_tokens.into())]).into(),
                ),
                (
                    "total_tokens",
                    (self.input_tokens + self.output_tokens).into(),
                ),
            ])
            .into(),
        );
        r.into()
    }

    /// The non-streamed body: the final `response` object (`json.dumps` defaults).
    pub fn final_object(&self) -> Vec<u8> {
        json::dumps(&self.response(true))
    }

    fn summary_part(text: &str) -> Value {
        obj([("type", "summary_text".into()), ("text", text.into())]).into()
    }

    fn annotations(&self, k: usize) -> Vec<Value> {
        let Item::Message { cite: true, .. } = &self.items[k] else {
            return Vec::new();
        };
        let (start, end) = script::cite_span();
        vec![obj([
            ("type", "url_citation".into()),
            ("start_index", start.into()),
            ("end_index", end.into()),
            ("title", script::CITE_TITLE.into()),
            ("url", script::CITE_URL.into()),
        ])
        .into()]
    }

    /// The `output_text` part of message item `k`; `done` gives its text and annotations.
    fn text_part(&self, k: usize, done: bool) -> Value {
        let Item::Message { full, .. } = &self.items[k] else {
            unreachable!("a text part of a message item")
        };
        let (annotations, text) = if done {
            (self.annotations(k), full.as_str())
        } else {
            (Vec::new(), "")
        };
        obj([
            ("type", "output_text".into()),
            ("annotations", annotations.into()),
            ("text", text.into()),
        ])
        .into()
    }

    fn item_added(&self, k: usize) -> Value {
        match &self.items[k] {
            Item::Reasoning { id, .. } => obj([
                ("id", id.as_str().into()),
                ("type", "reasoning".into()),
                ("summary", Value::Array(Vec::new())),
            ]),
            Item::Message { id, .. } => obj([
                ("id", id.as_str().into()),
                ("type", "message".into()),
                ("status", "in_progress".into()),
                ("role", "assistant".into()),
                ("content", Value::Array(Vec::new())),
            ]),
            Item::Call { id, call, .. } => obj([
                ("id", id.as_str().into()),
                ("type", "function_call".into()),
                ("status", "in_progress".into()),
                ("arguments", "".into()),
                ("call_id", call.call_id.as_str().into()),
                ("name", call.name.as_str().into()),
            ]),
        }
        .into()
    }

    fn item_done(&self, k: usize) -> Value {
        match &self.items[k] {
            Item::Reasoning {
                id,
                parts,
                encrypted,
            } => {
                let summary = parts.iter().map(|p| Self::summary_part(p.as_str()));
                let mut item = obj([
                    ("id", id.as_str().into()),
                    ("type", "reasoning".into()),
                    ("summary", Value::Array(summary.collect())),
                ]);
                if let Some(enc) = encrypted {
                    item.insert("encrypted_content".into(), enc.as_str().into());
                }
                item
            }
            Item::Message { id, .. } => obj([
                ("id", id.as_str().into()),
                ("type", "message".into()),
                ("status", "completed".into()),
                ("role", "assistant".into()),
                ("content", vec![self.text_part(k, true)].into()),
            ]),
            Item::Call { id, call, .. } => obj([
                ("id", id.as_str().into()),
                ("type", "function_call".into()),
                ("status", "completed".into()),
                ("arguments", call.arguments.as_str().into()),
                ("call_id", call.call_id.as_str().into()),
                ("name", call.name.as_str().into()),
            ]),
        }
        .into()
    }

    fn item_id(&self, k: usize) -> Value {
        match &self.items[k] {
            Item::Reasoning { id, .. } | Item::Message { id, .. } | Item::Call { id, .. } => {
                id.as_str().into()
            }
        }
    }

    fn summary(&self, k: usize, i: usize) -> &Words {
        let Item::Reasoning { parts, .. } = &self.items[k] else {
            unreachable!("a summary of a reasoning item")
        };
        &parts[i]
    }

    /// The event's type and its fields after `type` and `sequence_number`.
    fn event(&self, ev: Ev) -> (&'static str, Vec<(&'static str, Value)>) {
        let at = |k: usize| ("output_index", Value::from(k));
        let id = |k: usize| ("item_id", self.item_id(k));
        match ev {
            Ev::Created => ("response.created", vec![("response", self.response(false))]),
            Ev::InProgress => (
                "response.in_progress",
                vec![("response", self.response(false))],
            ),
            Ev::ItemAdded(k) => (
                "response.output_item.added",
                vec![at(k), ("item", self.item_added(k))],
            ),
            Ev::SummaryPartAdded(k, i) => (
                "response.reasoning_summary_part.added",
                vec![
                    id(k),
                    at(k),
                    ("summary_index", i.into()),
                    ("part", Self::summary_part("")),
                ],
            ),
            Ev::SummaryDelta(k, i, j) => (
                "response.reasoning_summary_text.delta",
                vec![
                    id(k),
                    at(k),
                    ("summary_index", i.into()),
                    ("delta", self.summary(k, i).piece(j).into()),
                ],
            ),
            Ev::SummaryTextDone(k, i) => (
                "response.reasoning_summary_text.done",
                vec![
                    id(k),
                    at(k),
                    ("summary_index", i.into()),
                    ("text", self.summary(k, i).as_str().into()),
                ],
            ),
            Ev::SummaryPartDone(k, i) => (
                "response.reasoning_summary_part.done",
                vec![
                    id(k),
                    at(k),
                    ("summary_index", i.into()),
                    ("part", Self::summary_part(self.summary(k, i).as_str())),
                ],
            ),
            Ev::ContentPartAdded(k) => (
                "response.content_part.added",
                vec![
                    id(k),
                    at(k),
                    ("content_index", 0u64.into()),
                    ("part", self.text_part(k, false)),
                ],
            ),
            Ev::TextDelta(k, j) => {
                let Item::Message { text, .. } = &self.items[k] else {
                    unreachable!("text of a message item")
                };
                let mut piece = String::new();
                text.piece(j, &mut piece);
                (
                    "response.output_text.delta",
                    vec![
                        id(k),
                        at(k),
                        ("content_index", 0u64.into()),
                        ("delta", piece.into()),
                    ],
                )
            }
            Ev::AnnotationAdded(k) => (
                "response.output_text.annotation.added",
                vec![
                    id(k),
                    at(k),
                    ("content_index", 0u64.into()),
                    ("annotation_index", 0u64.into()),
                    (
                        "annotation",
                        self.annotations(k).pop().expect("a cited text"),
                    ),
                ],
            ),
            Ev::TextDone(k) => {
                let Item::Message { full, .. } = &self.items[k] else {
                    unreachable!("text of a message item")
                };
                (
                    "response.output_text.done",
                    vec![
                        id(k),
                        at(k),
                        ("content_index", 0u64.into()),
                        ("text", full.as_str().into()),
                    ],
                )
            }
            Ev::ContentPartDone(k) => (
                "response.content_part.done",
                vec![
                    id(k),
                    at(k),
                    ("content_index", 0u64.into()),
                    ("part", self.text_part(k, true)),
                ],
            ),
            Ev::ArgsDelta(k, j) => {
                let Item::Call { call, pieces, .. } = &self.items[k] else {
                    unreachable!("arguments of a function call item")
                };
                (
                    "response.function_call_arguments.delta",
                    vec![
                        id(k),
                        at(k),
                        ("delta", call.arguments[pieces[j].clone()].into()),
                    ],
                )
            }
            Ev::ArgsDone(k) => {
                let Item::Call { call, .. } = &self.items[k] else {
                    unreachable!("arguments of a function call item")
                };
                (
                    "response.function_call_arguments.done",
                    vec![id(k), at(k), ("arguments", call.arguments.as_str().into())],
                )
            }
            Ev::ItemDone(k) => (
                "response.output_item.done",
                vec![at(k), ("item", self.item_done(k))],
            ),
            Ev::Completed => (
                "response.completed",
                vec![("response", self.response(true))],
            ),
            Ev::Abort => unreachable!("abort is not an event"),
        }
    }

    /// Appends `event: <type>\ndata: <json>\n\n` for event `ev` with sequence number `seq`.
    fn write_event(&self, ev: Ev, seq: usize, out: &mut Vec<u8>) {
        let (kind, fields) = self.event(ev);
        let mut data = obj([("type", kind.into()), ("sequence_number", seq.into())]);
        for (k, v) in fields {
            data.insert(k.into(), v);
        }
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(kind.as_bytes());
        out.extend_from_slice(b"\ndata: ");
        json::write_compact(&mut *out, &data);
        out.extend_from_slice(b"\n\n");
    }

    pub fn into_stream(self) -> impl Stream<Item = Result<Bytes, actix_web::Error>> {
        let state = EventStream {
            plan: self,
            pos: 0,
            buf: Vec::with_capacity(BATCH_BYTES + 1024),
            finished: false,
        };
        futures::stream::unfold(state, |mut state| async move {
            let item = state.next_item().await?;
            Some((item, state))
        })
    }
}

/// The state of one SSE response.
struct EventStream {
    plan: ResponsePlan,
    pos: usize,
    buf: Vec<u8>,
    finished: bool,
}

impl EventStream {
    fn flush(&mut self) -> Option<Result<Bytes, actix_web::Error>> {
        (!self.buf.is_empty()).then(|| Ok(Bytes::from(std::mem::take(&mut self.buf))))
    }

    /// The next body item: a batch of events, one event when there is a delay, or the error
    /// that makes actix drop the connection (midfail).
    async fn next_item(&mut self) -> Option<Result<Bytes, actix_web::Error>> {
        if self.finished {
            return None;
        }
        let delay = self.plan.delay;
        while let Some(&ev) = self.plan.events.get(self.pos) {
            if ev == Ev::Abort {
                // Put the partial reply on the wire first, then pause, then abort.
                if let Some(out) = self.flush() {
                    return Some(out);
                }
                tokio::time::sleep(delay.max(MIDFAIL_PAUSE)).await;
                self.finished = true;
                return Some(Err(ErrorInternalServerError("midfail: connection aborted")));
            }
            if self.pos > 0 && !delay.is_zero() {
                if let Some(out) = self.flush() {
                    return Some(out);
                }
                tokio::time::sleep(delay).await;
            }
            self.plan.write_event(ev, self.pos, &mut self.buf);
            self.pos += 1;
            if self.buf.len() >= BATCH_BYTES {
                break;
            }
        }
        if self.pos >= self.plan.events.len() {
            self.finished = true;
        }
        self.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(text: &str) -> Object {
        match json::loads(text.as_bytes()).unwrap() {
            Value::Object(o) => o,
            _ => panic!("not an object"),
        }
    }

    fn plan(text: &str) -> Result<Reply, Crash> {
        let b = body(text);
        let input = input_of(&b).map_err(|_| Crash)?;
        plan_response(&b, &input, &Config::default())
    }

    #[test]
    fn input_shapes() {
        assert_eq!(input_of(&body("{}")).err(), Some(InvalidInput::Missing));
        assert_eq!(
            input_of(&body(r#"{"input":null}"#)).err(),
            Some(InvalidInput::Missing)
        );
        assert_eq!(
            input_of(&body(r#"{"input":3}"#)).err(),
            Some(InvalidInput::WrongType)
        );
        let r = plan(r#"{"input":"add task x","tools":[{"type":"function","name":"add_task"}]}"#);
        assert!(
            matches!(r.unwrap().kind, ReplyKind::ToolCalls(c) if c[0].arguments == r#"{"title":"x"}"#)
        );
        // Chat Completions' nested tool shape is not a Responses function tool.
        let r = plan(
            r#"{"input":"add task x","tools":[{"type":"function","function":{"name":"add_task"}}]}"#,
        );
        assert_eq!(r.unwrap().kind, ReplyKind::Text(Text::Tokens(8)));
    }

    #[test]
    fn last_user_message_and_tool_output() {
        let r = plan(
            r#"{"input":[{"role":"user","content":[{"type":"input_text","text":" cite"},{"type":"input_image","text":"x"},{"type":"input_text","text":" it "}]},{"type":"reasoning","summary":[]}]}"#,
        );
        assert!(matches!(r.unwrap().kind, ReplyKind::Cite(_)));
        let r = plan(
            r#"{"input":[{"type":"message","role":"user","content":"fail"},{"role":"assistant","content":"x"},{"type":"function_call_output","call_id":"c","output":"ok  done"}]}"#,
        );
        assert_eq!(
            r.unwrap().kind,
            ReplyKind::Text(Text::Words(Words::new("Done: ok  done".into())))
        );
        let r = plan(
            r#"{"input":[{"role":"user","content":"fail"},{"role":"assistant","content":"ok"}]}"#,
        );
        assert_eq!(r.unwrap().kind, ReplyKind::Fail);
    }

    #[test]
    fn input_token_count() {
        let b = body(
            r#"{"instructions":"be brief","input":[{"role":"system","content":"a b"},{"role":"user","content":[{"type":"input_text","text":"c d e"}]},{"type":"function_call","arguments":"x y"},{"type":"function_call_output","output":"f"}]}"#,
        );
        assert_eq!(input_tokens(&b, &input_of(&b).unwrap()), 8);
    }
}
