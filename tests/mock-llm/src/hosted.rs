//! Hosted tools of the Responses API (an extension): when the request offers a hosted tool
//! (`tools` entry `{"type": "image_generation" | "web_search" | "file_search" |
//! "code_interpreter", …}`) and the last user message asks for it (`image …`, `search …`,
//! `files …`, `code …`, or `tool_choice` `{"type": T}` forces it), the reply is that tool's
//! call with every event the API streams for it, then a short message. Images are small real
//! PNGs (partial ones first, as many as the tool's `partial_images`). The README lists the
//! events and fields.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::Stream;
use serde_json::json;

use crate::cli::Config;
use crate::ids::uuid4_hex24;
use crate::json::{self, Object, Value};
use crate::responses::{last_user_text, Input};

/// What a hosted reply does.
#[derive(Clone, Debug, PartialEq)]
pub enum Hosted {
    /// `image [fail|slow|big] [subject]`.
    Image { mode: ImageMode, partials: u32 },
    /// `search [fail] <query>`; `reasoning` when the request asks for reasoning summaries.
    WebSearch {
        query: String,
        fail: bool,
        reasoning: bool,
    },
    /// `files <query>`.
    FileSearch { query: String },
    /// `code <expression>`.
    Code { code: String },
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ImageMode {
    Normal,
    Fail,
    /// The slow delay between events (a test cancels between them).
    Slow,
    /// A 512x512 final image (about 768 KiB), for size measurements.
    Big,
}

fn offered(body: &Object, kind: &str) -> Option<Object> {
    body.get("tools")?
        .as_array()?
        .iter()
        .filter_map(Value::as_object)
        .find(|t| t.get("type").and_then(Value::as_str) == Some(kind))
        .cloned()
}

/// The hosted reply the request asks for, if any.
pub fn plan(body: &Object, input: &Input<'_>) -> Option<Hosted> {
    let text = last_user_text(input)?;
    let text = text.trim();
    let forced = body
        .get("tool_choice")
        .and_then(|c| c.get("type"))
        .and_then(Value::as_str);
    let (word, rest) = match text.split_once(char::is_whitespace) {
        Some((word, rest)) => (word.to_ascii_lowercase(), rest.trim()),
        None => (text.to_ascii_lowercase(), ""),
    };
    let kind = match (word.as_str(), forced) {
        ("image", _) => "image_generation",
        ("search", _) => "web_search",
        ("files", _) => "file_search",
        ("code", _) => "code_interpreter",
        (_, Some(forced)) => forced,
        _ => return None,
    };
    let tool = offered(body, kind)?;
    // A forced tool takes the whole text as its subject.
    let rest = if matches!(word.as_str(), "image" | "search" | "files" | "code") {
        rest
    } else {
        text
    };
    let (flag, subject) = match rest.split_once(char::is_whitespace) {
        Some((flag, subject)) => (flag.to_ascii_lowercase(), subject.trim()),
        None => (rest.to_ascii_lowercase(), ""),
    };
    Some(match kind {
        "image_generation" => Hosted::Image {
            mode: match flag.as_str() {
                "fail" => ImageMode::Fail,
                "slow" => ImageMode::Slow,
                "big" => ImageMode::Big,
                _ => ImageMode::Normal,
            },
            partials: tool
                .get("partial_images")
                .and_then(Value::as_u64)
                .map_or(0, |n| n.min(3) as u32),
        },
        "web_search" => Hosted::WebSearch {
            fail: flag == "fail",
            query: if flag == "fail" { subject } else { rest }.to_string(),
            reasoning: body
                .get("reasoning")
                .is_some_and(|r| r.get("summary").is_some()),
        },
        "file_search" => Hosted::FileSearch {
            query: rest.to_string(),
        },
        "code_interpreter" => Hosted::Code {
            code: rest.to_string(),
        },
        _ => return None,
    })
}

/// Every event of a hosted reply, decided up front.
pub struct HostedReply {
    events: Vec<(&'static str, Object)>,
    delay: Duration,
}

fn obj(value: Value) -> Object {
    match value {
        Value::Object(map) => map,
        _ => Object::new(),
    }
}

/// The base64 of a solid `size`x`size` PNG of `rgb`.
fn png_b64(size: u32, rgb: [u8; 3]) -> String {
    use base64_lite::encode;
    encode(&png(size, size, rgb))
}

impl HostedReply {
    pub fn new(hosted: Hosted, body: &Object, cfg: &Config) -> Self {
        let ms = |v: f64| Duration::from_secs_f64(v.max(0.0) / 1000.0);
        let mut delay = ms(cfg.delay_ms);
        let response_id = format!("resp_{}", uuid4_hex24());
        let mut out = Output::default();
        match hosted {
            Hosted::Image { mode, partials } => {
                if mode == ImageMode::Slow {
                    delay = delay.max(ms(cfg.slow_delay_ms));
                }
                image_events(&mut out, mode, partials);
            }
            Hosted::WebSearch {
                query,
                fail,
                reasoning,
            } => {
                let encrypted = body_includes_encrypted(body);
                if reasoning {
                    out.reasoning(&["Planning the search.", "Choosing the query."], encrypted);
                }
                search_events(&mut out, &query, fail, reasoning.then_some(encrypted));
            }
            Hosted::FileSearch { query } => file_events(&mut out, &query),
            Hosted::Code { code } => code_events(&mut out, &code),
        }
        let created_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let response = |status: &str, output: Option<&Vec<Value>>| {
            let mut r = obj(
                json!({"id": response_id, "object": "response", "created_at": created_at,
                "status": status, "model": cfg.model}),
            );
            r.insert(
                "output".into(),
                Value::Array(output.cloned().unwrap_or_default()),
            );
            if output.is_some() {
                r.insert(
                    "usage".into(),
                    json!({"input_tokens": 0, "input_tokens_details": {"cached_tokens": 0},
                    "output_tokens": out.pieces, "output_tokens_details": {"reasoning_tokens": 0},
                    "total_tokens": out.pieces}),
                );
            }
            Value::Object(r)
        };
        let mut events = vec![
            (
                "response.created",
                obj(json!({"response": response("in_progress", None)})),
            ),
            (
                "response.in_progress",
                obj(json!({"response": response("in_progress", None)})),
            ),
        ];
        events.append(&mut out.events);
        events.push((
            "response.completed",
            obj(json!({"response": response("completed", Some(&out.items))})),
        ));
        HostedReply { events, delay }
    }

    /// The final response object (without stream).
    pub fn final_object(&self) -> Vec<u8> {
        let (_, completed) = self.events.last().expect("a completed event");
        json::dumps(&completed["response"])
    }

    pub fn total_delay(&self) -> Duration {
        self.delay
            .saturating_mul(u32::try_from(self.events.len() - 1).unwrap_or(u32::MAX))
    }

    pub fn into_stream(self) -> impl Stream<Item = Result<Bytes, actix_web::Error>> {
        let delay = self.delay;
        let events = self.events.into_iter().enumerate();
        futures::stream::unfold(events, move |mut events| async move {
            let (seq, (kind, fields)) = events.next()?;
            if seq > 0 && !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let mut data = obj(json!({"type": kind, "sequence_number": seq}));
            data.extend(fields);
            let mut buf = format!("event: {kind}\ndata: ").into_bytes();
            json::write_compact(&mut buf, &data);
            buf.extend_from_slice(b"\n\n");
            Some((Ok(Bytes::from(buf)), events))
        })
    }
}

/// Whether reasoning items carry `encrypted_content` (the request's `include`).
fn body_includes_encrypted(body: &Object) -> bool {
    body.get("include")
        .and_then(Value::as_array)
        .is_some_and(|i| i.iter().any(|v| v == "reasoning.encrypted_content"))
}

/// The output items and their events, as they are built.
#[derive(Default)]
struct Output {
    events: Vec<(&'static str, Object)>,
    items: Vec<Value>,
    pieces: usize,
}

impl Output {
    fn push(&mut self, kind: &'static str, fields: Value) {
        self.events.push((kind, obj(fields)));
    }

    /// An output item: `output_item.added` with `added`, the `middle` events, then
    /// `output_item.done` with `done`.
    fn item(&mut self, added: Value, middle: Vec<(&'static str, Value)>, done: Value) {
        let index = self.items.len();
        let id = done["id"].clone();
        self.push(
            "response.output_item.added",
            json!({"output_index": index, "item": added}),
        );
        for (kind, mut fields) in middle {
            if let Some(map) = fields.as_object_mut() {
                let mut head = obj(json!({"item_id": id, "output_index": index}));
                head.extend(std::mem::take(map));
                *map = head;
            }
            self.push(kind, fields);
        }
        self.push(
            "response.output_item.done",
            json!({"output_index": index, "item": done}),
        );
        self.items.push(done);
    }

    /// A reasoning item with one summary part per text (pieces split on spaces).
    fn reasoning(&mut self, parts: &[&str], encrypted: bool) {
        let id = format!("rs_{}", uuid4_hex24());
        let mut middle = Vec::new();
        for (i, text) in parts.iter().enumerate() {
            let empty = json!({"type": "summary_text", "text": ""});
            middle.push((
                "response.reasoning_summary_part.added",
                json!({"summary_index": i, "part": empty}),
            ));
            for (j, word) in text.split(' ').enumerate() {
                let piece = if j == 0 {
                    word.to_string()
                } else {
                    format!(" {word}")
                };
                middle.push((
                    "response.reasoning_summary_text.delta",
                    json!({"summary_index": i, "delta": piece}),
                ));
            }
            middle.push((
                "response.reasoning_summary_text.done",
                json!({"summary_index": i, "text": text}),
            ));
            let part = json!({"type": "summary_text", "text": text});
            middle.push((
                "response.reasoning_summary_part.done",
                json!({"summary_index": i, "part": part}),
            ));
        }
        let summary: Vec<Value> = parts
            .iter()
            .map(|t| json!({"type": "summary_text", "text": t}))
            .collect();
        let mut done = json!({"id": id, "type": "reasoning", "summary": summary});
        if encrypted {
            done["encrypted_content"] = format!("enc_{}", uuid4_hex24()).into();
        }
        self.item(
            json!({"id": id, "type": "reasoning", "summary": []}),
            middle,
            done,
        );
    }

    /// The assistant message `text` (pieces split on spaces), with `annotation` if any.
    fn message(&mut self, text: &str, annotation: Option<Value>) {
        let id = format!("msg_{}", uuid4_hex24());
        let mut middle = vec![(
            "response.content_part.added",
            json!({"content_index": 0, "part": {"type": "output_text", "annotations": [], "text": ""}}),
        )];
        for (i, word) in text.split(' ').enumerate() {
            let piece = if i == 0 {
                word.to_string()
            } else {
                format!(" {word}")
            };
            middle.push((
                "response.output_text.delta",
                json!({"content_index": 0, "delta": piece}),
            ));
            self.pieces += 1;
        }
        let annotations: Vec<Value> = annotation.into_iter().collect();
        for (i, annotation) in annotations.iter().enumerate() {
            middle.push((
                "response.output_text.annotation.added",
                json!({"content_index": 0, "annotation_index": i, "annotation": annotation}),
            ));
        }
        let part = json!({"type": "output_text", "annotations": annotations, "text": text});
        middle.push((
            "response.output_text.done",
            json!({"content_index": 0, "text": text}),
        ));
        middle.push((
            "response.content_part.done",
            json!({"content_index": 0, "part": part}),
        ));
        self.item(
            json!({"id": id, "type": "message", "status": "in_progress", "role": "assistant", "content": []}),
            middle,
            json!({"id": id, "type": "message", "status": "completed", "role": "assistant", "content": [part]}),
        );
    }
}

/// Partial image k of n: greys getting lighter; the final image is blue.
const PARTIAL_SIZE: u32 = 16;

fn image_events(out: &mut Output, mode: ImageMode, partials: u32) {
    let id = format!("ig_{}", uuid4_hex24());
    let mut middle = vec![
        ("response.image_generation_call.in_progress", json!({})),
        ("response.image_generation_call.generating", json!({})),
    ];
    if mode != ImageMode::Fail {
        for k in 0..partials {
            let grey = (64 + 48 * k).min(255) as u8;
            middle.push((
                "response.image_generation_call.partial_image",
                json!({"partial_image_index": k, "partial_image_b64": png_b64(PARTIAL_SIZE, [grey, grey, grey]),
                       "size": "16x16", "quality": "low", "background": "opaque", "output_format": "png"}),
            ));
        }
        middle.push(("response.image_generation_call.completed", json!({})));
    }
    let added = json!({"id": id, "type": "image_generation_call", "status": "in_progress"});
    if mode == ImageMode::Fail {
        let done = json!({"id": id, "type": "image_generation_call", "status": "failed", "result": null,
            "error": {"code": "moderation_blocked", "message": "the request was blocked by moderation"}});
        out.item(added, middle, done);
        out.message("I could not make that image.", None);
        return;
    }
    let size = if mode == ImageMode::Big {
        512
    } else {
        PARTIAL_SIZE
    };
    let done = json!({"id": id, "type": "image_generation_call", "status": "completed",
        "result": png_b64(size, [32, 96, 224]), "revised_prompt": "A blue square",
        "size": format!("{size}x{size}"), "quality": "low", "background": "opaque", "output_format": "png"});
    out.item(added, middle, done);
    out.message("Here is your image.", None);
}

/// A web search; `reasoning` (whether encrypted): a reasoning item follows it.
fn search_events(out: &mut Output, query: &str, fail: bool, reasoning: Option<bool>) {
    let id = format!("ws_{}", uuid4_hex24());
    let middle = vec![
        ("response.web_search_call.in_progress", json!({})),
        ("response.web_search_call.searching", json!({})),
        ("response.web_search_call.completed", json!({})),
    ];
    let added = json!({"id": id, "type": "web_search_call", "status": "in_progress"});
    if fail {
        out.item(
            added,
            middle[..2].to_vec(),
            json!({"id": id, "type": "web_search_call", "status": "failed"}),
        );
        out.message("The search failed.", None);
        return;
    }
    let done = json!({"id": id, "type": "web_search_call", "status": "completed",
        "action": {"type": "search", "query": query,
                   "sources": [{"type": "url", "url": "https://example.com/source"}]}});
    out.item(added, middle, done);
    if let Some(encrypted) = reasoning {
        out.reasoning(&["Reading the results."], encrypted);
    }
    out.message(
        "See the source.",
        Some(
            json!({"type": "url_citation", "start_index": 4, "end_index": 14,
                    "title": "Example source", "url": "https://example.com/source"}),
        ),
    );
}

fn file_events(out: &mut Output, query: &str) {
    let id = format!("fs_{}", uuid4_hex24());
    let file_id = format!("file_{}", uuid4_hex24());
    let middle = vec![
        ("response.file_search_call.in_progress", json!({})),
        ("response.file_search_call.searching", json!({})),
        ("response.file_search_call.completed", json!({})),
    ];
    let added = json!({"id": id, "type": "file_search_call", "status": "in_progress", "queries": [], "results": null});
    let done = json!({"id": id, "type": "file_search_call", "status": "completed", "queries": [query],
        "results": [{"file_id": file_id, "filename": "tides.pdf", "score": 0.9, "text": "High tide at noon.", "attributes": {}}]});
    out.item(added, middle, done);
    out.message(
        "See the file.",
        Some(json!({"type": "file_citation", "index": 13, "file_id": file_id, "filename": "tides.pdf"})),
    );
}

fn code_events(out: &mut Output, code: &str) {
    let id = format!("ci_{}", uuid4_hex24());
    let container = format!("cntr_{}", uuid4_hex24());
    let mut middle = vec![("response.code_interpreter_call.in_progress", json!({}))];
    middle.push((
        "response.code_interpreter_call_code.delta",
        json!({"delta": code}),
    ));
    middle.push((
        "response.code_interpreter_call_code.done",
        json!({"code": code}),
    ));
    middle.push(("response.code_interpreter_call.interpreting", json!({})));
    middle.push(("response.code_interpreter_call.completed", json!({})));
    let added = json!({"id": id, "type": "code_interpreter_call", "status": "in_progress",
        "code": "", "container_id": container, "outputs": null});
    let done = json!({"id": id, "type": "code_interpreter_call", "status": "completed",
        "code": code, "container_id": container, "outputs": [{"type": "logs", "logs": "ran"}]});
    out.item(added, middle, done);
    out.message(
        "The code wrote result.csv.",
        Some(
            json!({"type": "container_file_citation", "container_id": container,
                    "file_id": format!("cfile_{}", uuid4_hex24()), "filename": "result.csv",
                    "start_index": 15, "end_index": 25}),
        ),
    );
}

/// The bytes of every file a container holds (`GET /v1/containers/{id}/files/{id}/content`).
pub const CONTAINER_FILE: &[u8] = b"a,b\n1,2\n";

/// A `width`x`height` solid RGB PNG: real bytes any decoder reads (zlib with stored blocks).
pub fn png(width: u32, height: u32, rgb: [u8; 3]) -> Vec<u8> {
    // Each row: filter byte 0 (none), then the pixels.
    let mut row = vec![0u8];
    row.extend(std::iter::repeat_n(rgb, width as usize).flatten());
    let raw = row.repeat(height as usize);
    let mut zlib = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = raw.chunks(65_535).collect();
    for (i, block) in blocks.iter().enumerate() {
        zlib.push(u8::from(i + 1 == blocks.len()));
        let len = block.len() as u16;
        zlib.extend_from_slice(&len.to_le_bytes());
        zlib.extend_from_slice(&(!len).to_le_bytes());
        zlib.extend_from_slice(block);
    }
    zlib.extend_from_slice(&adler32(&raw).to_be_bytes());
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    for (kind, data) in [
        (b"IHDR", &ihdr[..]),
        (b"IDAT", &zlib[..]),
        (b"IEND", &[][..]),
    ] {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let start = out.len();
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let crc = crc32(&out[start..]);
        out.extend_from_slice(&crc.to_be_bytes());
    }
    out
}

fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in data {
        a = (a + u32::from(byte)) % 65_521;
        b = (b + a) % 65_521;
    }
    (b << 16) | a
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Standard base64 with padding (the mock has no base64 crate).
mod base64_lite {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    pub fn encode(bytes: &[u8]) -> String {
        let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
        for chunk in bytes.chunks(3) {
            let n = (u32::from(chunk[0]) << 16)
                | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
                | u32::from(*chunk.get(2).unwrap_or(&0));
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pngs_are_real() {
        let bytes = png(2, 1, [255, 0, 0]);
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"));
        // IHDR's CRC, as any PNG decoder checks it.
        assert_eq!(crc32(b"IEND"), 0xAE42_6082);
        assert_eq!(adler32(b"Wikipedia"), 0x11E6_0398);
        assert_eq!(base64_lite::encode(b"Man"), "TWFu");
        assert_eq!(base64_lite::encode(b"Ma"), "TWE=");
        assert_eq!(base64_lite::encode(b"M"), "TQ==");
    }

    fn plan_for(text: &str, tools: Value, choice: Option<Value>) -> Option<Hosted> {
        let mut body = obj(json!({"input": text, "tools": tools}));
        if let Some(choice) = choice {
            body.insert("tool_choice".into(), choice);
        }
        plan(&body, &Input::Text(text))
    }

    #[test]
    fn rules_need_the_tool_offered() {
        let image = json!([{"type": "image_generation", "partial_images": 2}]);
        assert_eq!(
            plan_for("image a cat", image.clone(), None),
            Some(Hosted::Image {
                mode: ImageMode::Normal,
                partials: 2
            })
        );
        assert_eq!(
            plan_for("IMAGE slow", image.clone(), None),
            Some(Hosted::Image {
                mode: ImageMode::Slow,
                partials: 2
            })
        );
        assert_eq!(plan_for("image a cat", json!([]), None), None);
        assert_eq!(
            plan_for(
                "a cat please",
                image,
                Some(json!({"type": "image_generation"}))
            ),
            Some(Hosted::Image {
                mode: ImageMode::Normal,
                partials: 2
            })
        );
        assert_eq!(
            plan_for("search tide times", json!([{"type": "web_search"}]), None),
            Some(Hosted::WebSearch {
                query: "tide times".into(),
                fail: false,
                reasoning: false
            })
        );
        assert_eq!(
            plan_for("search fail tides", json!([{"type": "web_search"}]), None),
            Some(Hosted::WebSearch {
                query: "tides".into(),
                fail: true,
                reasoning: false
            })
        );
        assert_eq!(
            plan_for("hello", json!([{"type": "web_search"}]), None),
            None
        );
    }
}
