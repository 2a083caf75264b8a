//! Expected SSE streams, written as event lists instead of escaped JSON strings.
//!
//! [`event`] builds one event (`{"type": kind, …fields}`, keys in the order written: serde_json
//! keeps insertion order here), and [`assert_frames`] compares a stream's bytes, with ids and
//! timestamps replaced by `thr_ID`/`msg_ID`/`TS` ([`normalize`]), to those events rendered as
//! `data: JSON\n\n` frames: any byte difference fails, and the message names the first event
//! that differs. For the order of event types alone, compare [`Stream::kinds`] with a list
//! such as [`FAILED_BEFORE_ANSWER`].
//!
//! [`Stream::kinds`]: super::client::Stream::kinds

use serde_json::{json, Map, Value};

/// The kinds of a turn on a new thread that failed before any answer (in-band error).
pub const FAILED_BEFORE_ANSWER: [&str; 4] = [
    "thread.created",
    "thread.item.done",
    "stream_options",
    "error",
];

/// The in-band error event that ends a failed turn.
pub fn stream_error() -> Value {
    json!({ "type": "error", "code": "stream.error", "allow_retry": true })
}

/// The thread id, item id and timestamp placeholders [`normalize`] writes.
pub const THREAD_ID: &str = "thr_ID";
pub const MESSAGE_ID: &str = "msg_ID";
pub const TS: &str = "TS";

/// `{"type": kind}` followed by the fields of `fields` (an object), in their order.
pub fn event(kind: &str, fields: Value) -> Value {
    prepend("type", json!(kind), fields)
}

/// `{key: value}` followed by the fields of `fields` (an object or `null`), in their order.
pub fn prepend(key: &str, value: Value, fields: Value) -> Value {
    let mut object = Map::new();
    object.insert(key.into(), value);
    match fields {
        Value::Object(fields) => object.extend(fields),
        Value::Null => {}
        other => panic!("fields must be an object: {other}"),
    }
    Value::Object(object)
}

/// The SSE bytes of these events: one `data: JSON\n\n` frame each.
pub fn frames(events: &[Value]) -> String {
    events.iter().map(|e| format!("data: {e}\n\n")).collect()
}

/// Asserts that `raw`, normalized, is byte for byte the frames of `expected`.
pub fn assert_frames(raw: &str, expected: &[Value]) {
    let actual = normalize(raw);
    let wanted = frames(expected);
    let actual_frames: Vec<&str> = actual.split_inclusive("\n\n").collect();
    let wanted_frames: Vec<&str> = wanted.split_inclusive("\n\n").collect();
    for (i, (a, w)) in actual_frames.iter().zip(&wanted_frames).enumerate() {
        assert_eq!(a, w, "event {i} differs");
    }
    assert_eq!(
        actual_frames.len(),
        wanted_frames.len(),
        "number of events; the stream:\n{actual}"
    );
    assert_eq!(actual, wanted);
}

/// Replaces ids and timestamps so byte comparison sees only the shape; checks on the way
/// that every id carries 96 random bits and every timestamp is an offset-less datetime.
pub fn normalize(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while !rest.is_empty() {
        let next_id = ["thr_", "msg_", "shcx_"]
            .iter()
            .filter_map(|p| rest.find(p).map(|i| (i, *p)))
            .min();
        let next_ts = rest
            .find("\"created_at\":\"")
            .map(|i| i + "\"created_at\":\"".len());
        match (next_id, next_ts) {
            (Some((i, p)), ts) if ts.is_none_or(|t| i < t) => {
                out.push_str(&rest[..i]);
                out.push_str(p);
                out.push_str("ID");
                let tail = &rest[i + p.len()..];
                let len = tail.bytes().take_while(|b| b.is_ascii_hexdigit()).count();
                assert_eq!(
                    len,
                    24,
                    "ids carry 96 random bits: {}",
                    &rest[i..i + p.len() + len]
                );
                rest = &tail[len..];
            }
            (_, Some(t)) => {
                out.push_str(&rest[..t]);
                out.push_str(TS);
                let tail = &rest[t..];
                let end = tail.find('"').unwrap();
                let ts = &tail[..end];
                assert!(
                    ts.len() == 19 || (ts.len() == 26 && ts.as_bytes()[19] == b'.'),
                    "offset-less datetime: {ts}"
                );
                rest = &tail[end..];
            }
            _ => {
                out.push_str(rest);
                break;
            }
        }
    }
    out
}
