//! The bytes of a reply: the SSE chunk stream (`stream: true`) and the single
//! `chat.completion` object, byte for byte as the reference writes them.
//!
//! Streamed chunks are compact JSON with raw UTF-8 (`separators=(",", ":")`,
//! `ensure_ascii=False`); the non-streamed object and the error bodies go through aiohttp's
//! `web.json_response`, i.e. `json.dumps` defaults (`", "`/`": "` and `\uXXXX` escapes).
//!
//! The stream writes straight into one buffer: the per-request prefix of every chunk is built
//! once, pieces are escaped in place, and with no delay many chunks go out per write.

use std::time::Duration;

use actix_web::error::ErrorInternalServerError;
use bytes::{BufMut, Bytes, BytesMut};
use futures::Stream;
use serde::Serialize;
use serde_json::json;

use crate::json::{self, Value};
use crate::script::{self, ReplyKind, Text, ToolCall, Words, MIDFAIL_PAUSE};

/// With no delay, chunks are batched into writes of about this size.
const BATCH_BYTES: usize = 32 * 1024;

/// What identifies one completion on the wire.
#[derive(Debug, Clone)]
pub struct Completion {
    pub id: String,
    pub created: u64,
    pub model: String,
}

/// Token counts reported in `usage`.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

impl Usage {
    fn to_json(self) -> Value {
        json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        })
    }
}

/// `completion_tokens` of a reply: one per text piece, reasoning piece or argument piece.
pub fn completion_tokens(kind: &ReplyKind) -> u64 {
    match kind {
        ReplyKind::Text(text) | ReplyKind::Midfail(text) => text.piece_count() as u64,
        ReplyKind::ToolCalls(calls) => calls.iter().map(|c| c.argument_ranges().len() as u64).sum(),
        ReplyKind::Think { subject, text } => {
            (Words::new(script::chat_reasoning(subject)).count() + text.piece_count()) as u64
        }
        ReplyKind::Fail => 0,
        ReplyKind::Cite(_) => unreachable!("cite is a Responses API rule"),
    }
}

/// Chunks the reference sends (`send()` calls) before the finish chunk, plus the finish
/// chunk: the non-streamed reply sleeps `delay` once per chunk of that count.
pub fn chunk_count(kind: &ReplyKind) -> u32 {
    let n = match kind {
        ReplyKind::Text(text) | ReplyKind::Midfail(text) => 1 + text.piece_count(),
        ReplyKind::ToolCalls(calls) => calls.iter().map(|c| 1 + c.argument_ranges().len()).sum(),
        // Reasoning chunks (the first carries the role), text chunks, finish.
        ReplyKind::Think { subject, text } => {
            Words::new(script::chat_reasoning(subject)).count() + text.piece_count()
        }
        ReplyKind::Fail => 0,
        ReplyKind::Cite(_) => unreachable!("cite is a Responses API rule"),
    };
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Appends `v` as compact JSON (a string literal for a `str`).
fn put_json<T: Serialize + ?Sized>(buf: &mut BytesMut, v: &T) {
    json::write_compact(buf.writer(), v);
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Step {
    Role,
    Text(usize),
    /// Reasoning piece `i` (`think`); piece 0 carries the role.
    Reasoning(usize),
    ToolHeader(usize),
    ToolArgs(usize, usize),
    Finish(&'static str),
    Usage,
    Done,
    /// midfail: pause, then fail the body so actix drops the connection mid-transfer.
    Abort,
}

impl Step {
    /// Steps written by the reference's `send()`, which sleeps before all but the first.
    fn is_send(self) -> bool {
        !matches!(self, Step::Usage | Step::Done | Step::Abort)
    }
}

enum Body {
    Text(Text),
    Midfail(Text),
    Think {
        reasoning: Words,
        text: Text,
    },
    Tools {
        calls: Vec<ToolCall>,
        /// Argument pieces of each call as byte ranges into its `arguments`.
        pieces: Vec<Vec<std::ops::Range<usize>>>,
        steps: Vec<Step>,
    },
}

/// The state of one SSE response.
pub struct ChunkStream {
    /// `data: {"id":…,"system_fingerprint":"fp_mock","choices":[`: every chunk starts so.
    prefix: Vec<u8>,
    include_usage: bool,
    usage: Usage,
    body: Body,
    delay: Duration,
    pos: usize,
    buf: BytesMut,
    /// Reused to format text pieces.
    scratch: String,
    finished: bool,
}

impl ChunkStream {
    pub fn new(
        completion: &Completion,
        kind: ReplyKind,
        delay: Duration,
        include_usage: bool,
        usage: Usage,
    ) -> Self {
        let mut prefix = Vec::with_capacity(160 + completion.model.len());
        prefix.extend_from_slice(b"data: {\"id\":");
        json::write_compact(&mut prefix, &completion.id);
        prefix.extend_from_slice(b",\"object\":\"chat.completion.chunk\",\"created\":");
        json::write_compact(&mut prefix, &completion.created);
        prefix.extend_from_slice(b",\"model\":");
        json::write_compact(&mut prefix, &completion.model);
        prefix.extend_from_slice(b",\"system_fingerprint\":\"fp_mock\",\"choices\":[");
        let body = match kind {
            ReplyKind::Text(text) => Body::Text(text),
            ReplyKind::Midfail(text) => Body::Midfail(text),
            ReplyKind::ToolCalls(calls) => {
                let mut steps = Vec::new();
                let mut pieces = Vec::with_capacity(calls.len());
                for (i, call) in calls.iter().enumerate() {
                    steps.push(Step::ToolHeader(i));
                    let ranges = call.argument_ranges();
                    steps.extend((0..ranges.len()).map(|j| Step::ToolArgs(i, j)));
                    pieces.push(ranges);
                }
                steps.push(Step::Finish("tool_calls"));
                Body::Tools {
                    calls,
                    pieces,
                    steps,
                }
            }
            ReplyKind::Think { subject, text } => Body::Think {
                reasoning: Words::new(script::chat_reasoning(&subject)),
                text,
            },
            ReplyKind::Fail => unreachable!("fail is answered with HTTP 500, never streamed"),
            ReplyKind::Cite(_) => unreachable!("cite is a Responses API rule"),
        };
        ChunkStream {
            prefix,
            include_usage,
            usage,
            body,
            delay,
            pos: 0,
            buf: BytesMut::with_capacity(BATCH_BYTES + 1024),
            scratch: String::new(),
            finished: false,
        }
    }

    fn step_at(&self, pos: usize) -> Option<Step> {
        let (main_len, step) = match &self.body {
            Body::Midfail(_) => {
                return match pos {
                    0 => Some(Step::Role),
                    p if p <= 3 => Some(Step::Text(p - 1)),
                    4 => Some(Step::Abort),
                    _ => None,
                }
            }
            Body::Text(text) => {
                let n = text.piece_count();
                let step = match pos {
                    0 => Some(Step::Role),
                    p if p <= n => Some(Step::Text(p - 1)),
                    p if p == n + 1 => Some(Step::Finish("stop")),
                    _ => None,
                };
                (n + 2, step)
            }
            Body::Think { reasoning, text } => {
                let (r, n) = (reasoning.count(), text.piece_count());
                let step = match pos {
                    p if p < r => Some(Step::Reasoning(p)),
                    p if p < r + n => Some(Step::Text(p - r)),
                    p if p == r + n => Some(Step::Finish("stop")),
                    _ => None,
                };
                (r + n + 1, step)
            }
            Body::Tools { steps, .. } => (steps.len(), steps.get(pos).copied()),
        };
        if step.is_some() {
            return step;
        }
        let tail: &[Step] = if self.include_usage {
            &[Step::Usage, Step::Done]
        } else {
            &[Step::Done]
        };
        tail.get(pos - main_len).copied()
    }

    /// `{"index":0,"delta":` … `,"logprobs":null,"finish_reason":…}]` + `,"usage":null` + `}`.
    fn write_chunk(&mut self, step: Step) {
        let buf = &mut self.buf;
        if step == Step::Done {
            buf.extend_from_slice(b"data: [DONE]\n\n");
            return;
        }
        buf.extend_from_slice(&self.prefix);
        if step == Step::Usage {
            buf.extend_from_slice(b"],\"usage\":");
            put_json(buf, &self.usage.to_json());
            buf.extend_from_slice(b"}\n\n");
            return;
        }
        buf.extend_from_slice(b"{\"index\":0,\"delta\":");
        let mut reason: &[u8] = b"null";
        match step {
            Step::Role => {
                buf.extend_from_slice(b"{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null}")
            }
            Step::Text(i) => {
                let text = match &self.body {
                    Body::Text(t) | Body::Midfail(t) | Body::Think { text: t, .. } => t,
                    Body::Tools { .. } => unreachable!("text step in a tool reply"),
                };
                self.scratch.clear();
                text.piece(i, &mut self.scratch);
                buf.extend_from_slice(b"{\"content\":");
                put_json(buf, &self.scratch);
                buf.extend_from_slice(b"}");
            }
            Step::Reasoning(i) => {
                let Body::Think { reasoning, .. } = &self.body else {
                    unreachable!("reasoning step in a reply without reasoning")
                };
                buf.extend_from_slice(if i == 0 {
                    b"{\"role\":\"assistant\",\"content\":null,\"reasoning_content\":" as &[u8]
                } else {
                    b"{\"reasoning_content\":"
                });
                put_json(buf, reasoning.piece(i));
                buf.extend_from_slice(if i == 0 {
                    b",\"refusal\":null}" as &[u8]
                } else {
                    b"}"
                });
            }
            Step::ToolHeader(i) => {
                let Body::Tools { calls, .. } = &self.body else {
                    unreachable!("tool step in a text reply")
                };
                let call = &calls[i];
                buf.extend_from_slice(if i == 0 {
                    b"{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"index\":"
                        as &[u8]
                } else {
                    b"{\"tool_calls\":[{\"index\":"
                });
                put_json(buf, &i);
                buf.extend_from_slice(b",\"id\":");
                put_json(buf, &call.call_id);
                buf.extend_from_slice(b",\"type\":\"function\",\"function\":{\"name\":");
                put_json(buf, &call.name);
                buf.extend_from_slice(b",\"arguments\":\"\"}}]");
                buf.extend_from_slice(if i == 0 {
                    b",\"refusal\":null}" as &[u8]
                } else {
                    b"}"
                });
            }
            Step::ToolArgs(i, j) => {
                let Body::Tools { calls, pieces, .. } = &self.body else {
                    unreachable!("tool step in a text reply")
                };
                buf.extend_from_slice(b"{\"tool_calls\":[{\"index\":");
                put_json(buf, &i);
                buf.extend_from_slice(b",\"function\":{\"arguments\":");
                put_json(buf, &calls[i].arguments[pieces[i][j].clone()]);
                buf.extend_from_slice(b"}}]}");
            }
            Step::Finish(r) => {
                buf.extend_from_slice(b"{}");
                reason = match r {
                    "stop" => b"\"stop\"",
                    _ => b"\"tool_calls\"",
                };
            }
            Step::Usage | Step::Done | Step::Abort => unreachable!("handled above"),
        }
        buf.extend_from_slice(b",\"logprobs\":null,\"finish_reason\":");
        buf.extend_from_slice(reason);
        buf.extend_from_slice(if self.include_usage {
            b"}],\"usage\":null}\n\n" as &[u8]
        } else {
            b"}]}\n\n"
        });
    }

    fn flush(&mut self) -> Option<Result<Bytes, actix_web::Error>> {
        (!self.buf.is_empty()).then(|| Ok(self.buf.split().freeze()))
    }

    /// The next body item: a batch of chunks, one chunk when there is a delay, or the error
    /// that makes actix drop the connection (midfail).
    async fn next_item(&mut self) -> Option<Result<Bytes, actix_web::Error>> {
        if self.finished {
            return None;
        }
        while let Some(step) = self.step_at(self.pos) {
            if step == Step::Abort {
                // Put the partial reply on the wire first, then pause, then abort.
                if let Some(out) = self.flush() {
                    return Some(out);
                }
                tokio::time::sleep(self.delay.max(MIDFAIL_PAUSE)).await;
                self.finished = true;
                return Some(Err(ErrorInternalServerError("midfail: connection aborted")));
            }
            if step.is_send() && self.pos > 0 && !self.delay.is_zero() {
                if let Some(out) = self.flush() {
                    return Some(out);
                }
                tokio::time::sleep(self.delay).await;
            }
            self.write_chunk(step);
            self.pos += 1;
            if self.buf.len() >= BATCH_BYTES {
                break;
            }
        }
        self.flush()
    }

    pub fn into_stream(self) -> impl Stream<Item = Result<Bytes, actix_web::Error>> {
        futures::stream::unfold(self, |mut state| async move {
            let item = state.next_item().await?;
            Some((item, state))
        })
    }
}

/// The `chat.completion` object of a `stream: false` request (`json.dumps` defaults).
pub fn completion_object(completion: &Completion, kind: &ReplyKind, usage: Usage) -> Vec<u8> {
    let (message, finish) = match kind {
        ReplyKind::Text(text) => (
            json!({"role": "assistant", "content": text.joined(), "refusal": null}),
            "stop",
        ),
        ReplyKind::Think { subject, text } => (
            json!({
                "role": "assistant",
                "content": text.joined(),
                "reasoning_content": script::chat_reasoning(subject),
                "refusal": null,
            }),
            "stop",
        ),
        ReplyKind::ToolCalls(calls) => {
            let calls: Vec<Value> = calls
                .iter()
                .map(|call| {
                    json!({
                        "id": call.call_id,
                        "type": "function",
                        "function": {"name": call.name, "arguments": call.arguments},
                    })
                })
                .collect();
            let message = json!({
                "role": "assistant",
                "content": null,
                "refusal": null,
                "tool_calls": calls,
            });
            (message, "tool_calls")
        }
        ReplyKind::Midfail(_) | ReplyKind::Fail | ReplyKind::Cite(_) => {
            unreachable!("no completion object for {kind:?}")
        }
    };
    json::dumps(&json!({
        "id": completion.id,
        "object": "chat.completion",
        "created": completion.created,
        "model": completion.model,
        "system_fingerprint": "fp_mock",
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}],
        "usage": usage.to_json(),
    }))
}

/// `{"error": {"message": …, "type": …, "param": null, "code": …}}` (`json.dumps` defaults).
pub fn error_object(message: &str, etype: &str, code: Option<&str>) -> Vec<u8> {
    error_object_with_param(message, etype, None, code)
}

/// [`error_object`] with a `param`.
pub fn error_object_with_param(
    message: &str,
    etype: &str,
    param: Option<&str>,
    code: Option<&str>,
) -> Vec<u8> {
    json::dumps(&json!({
        "error": {"message": message, "type": etype, "param": param, "code": code},
    }))
}

/// `/v1/models` (`json.dumps` defaults).
pub fn models_object(model: &str) -> Vec<u8> {
    json::dumps(&json!({
        "object": "list",
        "data": [{"id": model, "object": "model", "created": 1700000000, "owned_by": "mock"}],
    }))
}
