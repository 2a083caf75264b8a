//! The reply script: which reply a request gets, decided from its `messages` and `tools`
//! exactly as `plan_reply` in the reference `mock_llm.py` decides it (its docstring is the spec).

use std::ops::Range;
use std::time::Duration;

use crate::cli::Config;
use crate::json::{Object, Value};
use crate::pytext::{self, IntMatch};

/// `TOOL_CONTENT_LIMIT`: code points of a tool result echoed in "Done: …".
const TOOL_CONTENT_LIMIT: usize = 200;
/// `MAX_TOKENS_PER_REPLY`.
pub const MAX_TOKENS_PER_REPLY: u64 = 100_000;
/// `MIDFAIL_PAUSE_S`: lets the client consume the partial reply before the connection drops.
pub const MIDFAIL_PAUSE: Duration = Duration::from_millis(100);
/// Word tokens of a `midfail` reply.
const MIDFAIL_TOKENS: usize = 3;

/// The text of a reply, already cut into stream pieces.
#[derive(Debug, Clone, PartialEq)]
pub enum Text {
    /// `word_tokens(n)`: "tok0", " tok1", … — generated on the fly, never materialized.
    /// `n == 0` is one empty piece.
    Tokens(usize),
    /// `split_words(text)`: the text split on single spaces, pieces after the first prefixed
    /// with the space.
    Words(String),
}

impl Text {
    pub fn piece_count(&self) -> usize {
        match self {
            Text::Tokens(n) => (*n).max(1),
            Text::Words(s) => s.split(' ').count(),
        }
    }

    /// Appends piece `i` (unescaped) to `out`.
    pub fn piece(&self, i: usize, out: &mut String) {
        use std::fmt::Write;
        match self {
            Text::Tokens(0) => {}
            Text::Tokens(_) => {
                if i > 0 {
                    out.push(' ');
                }
                let _ = write!(out, "tok{i}");
            }
            Text::Words(s) => {
                // Only the "Done: …" reply uses this; it has at most 200 code points of words.
                if let Some(word) = s.split(' ').nth(i) {
                    if i > 0 {
                        out.push(' ');
                    }
                    out.push_str(word);
                }
            }
        }
    }

    /// `"".join(pieces)`.
    pub fn joined(&self) -> String {
        match self {
            Text::Words(s) => s.clone(),
            Text::Tokens(n) => {
                let mut out = String::new();
                for i in 0..*n {
                    self.piece(i, &mut out);
                }
                out
            }
        }
    }
}

/// One function call of a tool-call reply.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    pub call_id: String,
    pub name: &'static str,
    /// Compact JSON text (what the model "wrote").
    pub arguments: String,
}

impl ToolCall {
    fn new(name: &'static str, arguments: String) -> Self {
        ToolCall {
            call_id: format!("call_{}", crate::ids::uuid4_hex24()),
            name,
            arguments,
        }
    }

    /// `split_arguments`: 3 pieces cut at len//3 and 2*len//3 (code points), or 1 piece when
    /// shorter than 3 code points; as byte ranges into `arguments`.
    pub fn argument_ranges(&self) -> Vec<Range<usize>> {
        let s = self.arguments.as_str();
        let n = s.chars().count();
        if n < 3 {
            let whole = 0..s.len();
            return vec![whole];
        }
        let a = byte_offset(s, n / 3);
        let b = byte_offset(s, 2 * n / 3);
        vec![0..a, a..b, b..s.len()]
    }

    /// The argument pieces themselves.
    #[cfg(test)]
    pub fn argument_pieces(&self) -> Vec<&str> {
        self.argument_ranges()
            .into_iter()
            .map(|r| &self.arguments[r])
            .collect()
    }
}

fn byte_offset(s: &str, chars: usize) -> usize {
    s.char_indices().nth(chars).map_or(s.len(), |(at, _)| at)
}

/// What the server answers.
#[derive(Debug, Clone, PartialEq)]
pub enum ReplyKind {
    Text(Text),
    ToolCalls(Vec<ToolCall>),
    /// Role chunk + 3 text chunks, a pause, then the connection is aborted.
    Midfail(Text),
    /// HTTP 500 with an OpenAI-style error body.
    Fail,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub kind: ReplyKind,
    /// Pause before every chunk after the first.
    pub delay: Duration,
}

/// A request the reference would crash on (an unhandled Python exception → aiohttp's 500).
#[derive(Debug, PartialEq, Eq)]
pub struct Crash;

/// Seconds → `Duration`, where zero or negative (or NaN) means "no sleep" (`if delay_s > 0`).
pub fn delay_from_ms(ms: f64) -> Duration {
    if ms > 0.0 {
        Duration::try_from_secs_f64(ms / 1000.0).unwrap_or(Duration::MAX)
    } else {
        Duration::ZERO
    }
}

/// `content_text`: a string, or the concatenated `{"type": "text"}` parts of an array.
pub fn content_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::Str(s)) => s.clone(),
        Some(Value::Array(parts)) => {
            let mut out = String::new();
            for part in parts {
                if let Some(part) = part.as_object() {
                    if part.get("type").and_then(Value::as_str) == Some("text") {
                        if let Some(text) = part.get("text").and_then(Value::as_str) {
                            out.push_str(text);
                        }
                    }
                }
            }
            out
        }
        _ => String::new(),
    }
}

/// `offered_tools`; `Err` where iterating `body.get("tools") or []` raises `TypeError`.
fn offered_tools(body: &Object) -> Result<Vec<&str>, Crash> {
    let Some(tools) = body.get("tools").filter(|t| t.is_truthy()) else {
        return Ok(Vec::new());
    };
    match tools {
        // Iterating a str yields str and a dict yields its keys: never a dict, so no names.
        Value::Str(_) | Value::Object(_) => Ok(Vec::new()),
        Value::Array(items) => Ok(items
            .iter()
            .filter_map(|t| {
                t.as_object()?
                    .get("function")?
                    .as_object()?
                    .get("name")?
                    .as_str()
            })
            .collect()),
        _ => Err(Crash), // a truthy bool or number is not iterable
    }
}

/// `prompt_token_estimate`: whitespace-separated words over every message's content.
pub fn prompt_token_estimate(messages: &[Value]) -> u64 {
    messages
        .iter()
        .filter_map(Value::as_object)
        .map(|m| pytext::count_words(&content_text(m.get("content"))) as u64)
        .sum()
}

/// `compact({"title": title})`.
fn title_arguments(title: &str) -> String {
    let mut out = Vec::with_capacity(title.len() + 12);
    out.extend_from_slice(b"{\"title\":");
    crate::json::write_str(&mut out, title);
    out.push(b'}');
    String::from_utf8(out).expect("JSON of a str is UTF-8")
}

/// `plan_reply(body, cfg)` for a body already checked to have a non-empty `messages` array.
pub fn plan_reply(body: &Object, messages: &[Value], cfg: &Config) -> Result<Reply, Crash> {
    let delay = delay_from_ms(cfg.delay_ms);
    let text_reply = |text: Text, delay: Duration| Reply {
        kind: ReplyKind::Text(text),
        delay,
    };
    let last = messages.last().and_then(Value::as_object);
    if let Some(last) = last {
        if last.get("role").and_then(Value::as_str) == Some("tool") {
            let content = content_text(last.get("content"));
            let text = format!(
                "Done: {}",
                pytext::prefix_chars(&content, TOOL_CONTENT_LIMIT)
            );
            return Ok(text_reply(Text::Words(text), delay));
        }
    }

    let user_text = messages
        .iter()
        .rev()
        .filter_map(Value::as_object)
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .map(|m| content_text(m.get("content")))
        .unwrap_or_default();
    let user_text = pytext::strip(&user_text);
    let tools = offered_tools(body)?;
    let offered = |name: &str| tools.contains(&name);
    let tool_reply = |calls: Vec<ToolCall>| Reply {
        kind: ReplyKind::ToolCalls(calls),
        delay,
    };

    if let Some(rest) = pytext::match_rest(user_text, "add task") {
        if offered("add_task") {
            let args = title_arguments(pytext::strip(rest));
            return Ok(tool_reply(vec![ToolCall::new("add_task", args)]));
        }
    }
    if pytext::match_keyword(user_text, "list tasks") && offered("list_tasks") {
        return Ok(tool_reply(vec![ToolCall::new("list_tasks", "{}".into())]));
    }
    if pytext::match_keyword(user_text, "two tools") && offered("add_task") {
        return Ok(tool_reply(vec![
            ToolCall::new("add_task", title_arguments("a")),
            ToolCall::new("add_task", title_arguments("b")),
        ]));
    }
    if pytext::match_keyword(user_text, "midfail") {
        return Ok(Reply {
            kind: ReplyKind::Midfail(Text::Tokens(MIDFAIL_TOKENS)),
            delay,
        });
    }
    if pytext::match_keyword(user_text, "fail") {
        return Ok(Reply {
            kind: ReplyKind::Fail,
            delay: Duration::ZERO,
        });
    }
    match pytext::match_int(user_text, "slow") {
        IntMatch::Value(n) => {
            let slow = delay_from_ms(cfg.delay_ms.max(cfg.slow_delay_ms));
            let n = n.min(MAX_TOKENS_PER_REPLY) as usize;
            return Ok(text_reply(Text::Tokens(n), slow));
        }
        IntMatch::TooManyDigits => return Err(Crash),
        IntMatch::NoMatch => {}
    }
    let n = cfg.tokens.clamp(0, MAX_TOKENS_PER_REPLY as i64) as usize;
    Ok(text_reply(Text::Tokens(n), delay))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(body: &str) -> Result<Reply, Crash> {
        let v = crate::json::loads(body.as_bytes()).unwrap().value;
        let obj = v.as_object().unwrap();
        let messages = obj.get("messages").unwrap().as_array().unwrap();
        plan_reply(obj, messages, &Config::default())
    }

    #[test]
    fn argument_pieces_cut_by_code_points() {
        let call = ToolCall::new("add_task", title_arguments("caf\u{e9} \u{1f600}"));
        let pieces = call.argument_pieces();
        assert_eq!(pieces.concat(), call.arguments);
        assert_eq!(pieces, ["{\"titl", "e\":\"ca", "f\u{e9} \u{1f600}\"}"]);
        assert_eq!(ToolCall::new("x", "{}".into()).argument_pieces(), ["{}"]);
    }

    #[test]
    fn tokens_and_words() {
        let mut s = String::new();
        Text::Tokens(3).piece(2, &mut s);
        assert_eq!(s, " tok2");
        assert_eq!(Text::Tokens(0).piece_count(), 1);
        assert_eq!(Text::Tokens(3).joined(), "tok0 tok1 tok2");
        assert_eq!(Text::Words("Done: ".into()).piece_count(), 2);
    }

    #[test]
    fn crashes_where_python_raises() {
        let tools = r#"{"messages":[{"role":"user","content":"hi"}],"tools":5}"#;
        assert_eq!(plan(tools), Err(Crash));
        let tools = r#"{"messages":[{"role":"user","content":"hi"}],"tools":0}"#;
        assert!(plan(tools).is_ok());
        let tools = r#"{"messages":[{"role":"user","content":"hi"}],"tools":{"a":1}}"#;
        assert!(plan(tools).is_ok());
    }

    #[test]
    fn tool_command_without_tool_falls_through() {
        let r = plan(r#"{"messages":[{"role":"user","content":" add task x "}]}"#).unwrap();
        assert_eq!(r.kind, ReplyKind::Text(Text::Tokens(8)));
    }
}
