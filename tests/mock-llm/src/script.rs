//! The reply script: which reply a request gets, decided from its `messages` and `tools`
//! exactly as `plan_reply` in the reference `mock_llm.py` decides it (its docstring is the spec),
//! plus this mock's extensions (`think`, `call`, and `cite` for the Responses API; see the
//! README).
//! [`plan_for_user_text`] holds the rules on the user's text, shared by both APIs.

use std::ops::Range;
use std::time::Duration;

use crate::cli::Config;
use serde_json::json;

use crate::json::{self, Object, Value};
use crate::pytext::{self, IntMatch};

/// `TOOL_CONTENT_LIMIT`: code points of a tool result echoed in "Done: …".
const TOOL_CONTENT_LIMIT: usize = 200;
/// `MAX_TOKENS_PER_REPLY`.
pub const MAX_TOKENS_PER_REPLY: u64 = 100_000;
/// `MIDFAIL_PAUSE_S`: lets the client consume the partial reply before the connection drops.
pub const MIDFAIL_PAUSE: Duration = Duration::from_millis(100);
/// Word tokens of a `midfail` reply.
pub const MIDFAIL_TOKENS: usize = 3;
/// The text of the `cite` reply, and the span of it that its one annotation cites.
pub const CITE_TEXT: &str = "According to the source, tok0.";
pub const CITE_SPAN: &str = "the source";
pub const CITE_TITLE: &str = "Example source";
pub const CITE_URL: &str = "https://example.com/source";

/// The API a request came in on: the rules differ only in `cite` (Responses API only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    ChatCompletions,
    Responses,
}

/// `split_words(text)` with the pieces' byte offsets computed once: piece 0 is the text up to
/// the first space, piece k > 0 runs from the k-th space (included) to the next one.
#[derive(Debug, Clone, PartialEq)]
pub struct Words {
    text: String,
    starts: Vec<usize>,
}

impl Words {
    pub fn new(text: String) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices(' ').map(|(at, _)| at));
        Words { text, starts }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn count(&self) -> usize {
        self.starts.len()
    }

    pub fn piece(&self, i: usize) -> &str {
        let end = self.starts.get(i + 1).copied().unwrap_or(self.text.len());
        &self.text[self.starts[i]..end]
    }
}

/// The text of a reply, already cut into stream pieces.
#[derive(Debug, Clone, PartialEq)]
pub enum Text {
    /// `word_tokens(n)`: "tok0", " tok1", … — generated on the fly, never materialized.
    /// `n == 0` is one empty piece.
    Tokens(usize),
    /// `split_words(text)`: the text split on single spaces, pieces after the first prefixed
    /// with the space.
    Words(Words),
}

impl Text {
    pub fn piece_count(&self) -> usize {
        match self {
            Text::Tokens(n) => (*n).max(1),
            Text::Words(w) => w.count(),
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
            Text::Words(w) => {
                if i < w.count() {
                    out.push_str(w.piece(i));
                }
            }
        }
    }

    /// `"".join(pieces)`.
    pub fn joined(&self) -> String {
        match self {
            Text::Words(w) => w.as_str().to_owned(),
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
    pub name: String,
    /// Compact JSON text (what the model "wrote").
    pub arguments: String,
}

impl ToolCall {
    fn new(name: impl Into<String>, arguments: String) -> Self {
        ToolCall {
            call_id: format!("call_{}", crate::ids::uuid4_hex24()),
            name: name.into(),
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
    /// `think …`: reasoning about `subject` (see [`chat_reasoning`], [`summary_parts`]), then
    /// the text.
    Think {
        subject: String,
        text: Text,
    },
    /// `cite` (Responses API only): [`CITE_TEXT`] with one `url_citation` annotation.
    Cite(Text),
}

/// The `reasoning_content` of a `think` reply over Chat Completions.
pub fn chat_reasoning(subject: &str) -> String {
    format!("Thinking about {subject}.\n\nChecking the answer.")
}

/// The two reasoning summary parts of a `think` reply over the Responses API.
pub fn summary_parts(subject: &str) -> [String; 2] {
    [
        format!("Thinking about {subject}."),
        "Checking the answer.".to_owned(),
    ]
}

/// Code point offsets of [`CITE_SPAN`] in [`CITE_TEXT`]: the annotation's start and end.
pub fn cite_span() -> (usize, usize) {
    let at = CITE_TEXT.find(CITE_SPAN).expect("the span is in the text");
    let start = CITE_TEXT[..at].chars().count();
    (start, start + CITE_SPAN.chars().count())
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
        Some(Value::String(s)) => s.clone(),
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
    let Some(tools) = body.get("tools").filter(|t| json::is_truthy(t)) else {
        return Ok(Vec::new());
    };
    match tools {
        // Iterating a str yields str and a dict yields its keys: never a dict, so no names.
        Value::String(_) | Value::Object(_) => Ok(Vec::new()),
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
/// The questions of `ask me` (an extension: chatkit-rs's `ask_user` tool).
pub const ASK_ME_ARGUMENTS: &str = r#"{"questions":[{"id":"color","question":"Which color?","options":["Red","Blue"]},{"id":"notes","question":"Anything else?","description":"optional"}]}"#;

fn title_arguments(title: &str) -> String {
    compact_text(&json!({ "title": title }))
}

/// The arguments of a `call` command: group 2 re-serialized compactly when it is a JSON object,
/// else (absent, not JSON, not an object) `{}`.
fn call_arguments(group: Option<&str>) -> String {
    match group.and_then(|g| json::loads(g.as_bytes())) {
        Some(object @ Value::Object(_)) => compact_text(&object),
        _ => "{}".to_owned(),
    }
}

fn compact_text(v: &Value) -> String {
    String::from_utf8(json::compact(v)).expect("serde_json writes UTF-8")
}

/// `plan_reply(body, cfg)` for a body already checked to have a non-empty `messages` array.
pub fn plan_reply(body: &Object, messages: &[Value], cfg: &Config) -> Result<Reply, Crash> {
    let last = messages.last().and_then(Value::as_object);
    if let Some(last) = last {
        if last.get("role").and_then(Value::as_str) == Some("tool") {
            let content = content_text(last.get("content"));
            return Ok(done_reply(&content, cfg));
        }
    }

    let user_text = messages
        .iter()
        .rev()
        .filter_map(Value::as_object)
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .map(|m| content_text(m.get("content")))
        .unwrap_or_default();
    let tools = offered_tools(body)?;
    let offered = |name: &str| tools.contains(&name);
    plan_for_user_text(&user_text, offered, Api::ChatCompletions, cfg)
}

/// The reply to a tool result: "Done: " + its first 200 code points.
pub fn done_reply(tool_output: &str, cfg: &Config) -> Reply {
    let text = format!(
        "Done: {}",
        pytext::prefix_chars(tool_output, TOOL_CONTENT_LIMIT)
    );
    Reply {
        kind: ReplyKind::Text(Text::Words(Words::new(text))),
        delay: delay_from_ms(cfg.delay_ms),
    }
}

/// The rules on the last user message's text (stripped here), first match wins; `offered`
/// tells whether a tool of that name is offered.
pub fn plan_for_user_text(
    user_text: &str,
    offered: impl Fn(&str) -> bool,
    api: Api,
    cfg: &Config,
) -> Result<Reply, Crash> {
    let delay = delay_from_ms(cfg.delay_ms);
    let user_text = pytext::strip(user_text);
    let default_tokens = || Text::Tokens(cfg.tokens.clamp(0, MAX_TOKENS_PER_REPLY as i64) as usize);
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
    if pytext::match_keyword(user_text, "ask me") && offered("ask_user") {
        return Ok(tool_reply(vec![ToolCall::new(
            "ask_user",
            ASK_ME_ARGUMENTS.into(),
        )]));
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
    if let Some(rest) = pytext::match_keyword_rest(user_text, "think") {
        let subject = match pytext::strip(rest) {
            "" => "it",
            subject => subject,
        };
        return Ok(Reply {
            kind: ReplyKind::Think {
                subject: subject.to_owned(),
                text: default_tokens(),
            },
            delay,
        });
    }
    if api == Api::Responses && pytext::match_keyword(user_text, "cite") {
        return Ok(Reply {
            kind: ReplyKind::Cite(Text::Words(Words::new(CITE_TEXT.to_owned()))),
            delay,
        });
    }
    match pytext::match_int(user_text, "slow") {
        IntMatch::Value(n) => {
            let slow = delay_from_ms(cfg.delay_ms.max(cfg.slow_delay_ms));
            let n = n.min(MAX_TOKENS_PER_REPLY) as usize;
            return Ok(Reply {
                kind: ReplyKind::Text(Text::Tokens(n)),
                delay: slow,
            });
        }
        IntMatch::TooManyDigits => return Err(Crash),
        IntMatch::NoMatch => {}
    }
    if let Some((name, json)) = pytext::match_call(user_text) {
        if offered(name) {
            let call = ToolCall::new(name, call_arguments(json));
            return Ok(tool_reply(vec![call]));
        }
    }
    Ok(Reply {
        kind: ReplyKind::Text(default_tokens()),
        delay,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(body: &str) -> Result<Reply, Crash> {
        let v = json::loads(body.as_bytes()).unwrap();
        let obj = v.as_object().unwrap();
        let messages = obj.get("messages").unwrap().as_array().unwrap();
        plan_reply(obj, messages, &Config::default())
    }

    #[test]
    fn ask_me_calls_ask_user_when_it_is_offered() {
        let body = |tools: &str| {
            format!(
                r#"{{"messages": [{{"role": "user", "content": "Ask me"}}], "tools": {tools}}}"#
            )
        };
        match plan(&body(r#"[{"function": {"name": "ask_user"}}]"#))
            .unwrap()
            .kind
        {
            ReplyKind::ToolCalls(calls) => {
                assert_eq!(calls.len(), 1);
                assert_eq!(calls[0].name, "ask_user");
                assert_eq!(calls[0].arguments, ASK_ME_ARGUMENTS);
            }
            _ => panic!("not a tool call"),
        }
        assert!(matches!(
            plan(&body("[]")).unwrap().kind,
            ReplyKind::Text(_)
        ));
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
        let done = Text::Words(Words::new("Done: ".into()));
        assert_eq!(done.piece_count(), 2);
        let words = Words::new(" a  b".into());
        let pieces: Vec<&str> = (0..words.count()).map(|i| words.piece(i)).collect();
        assert_eq!(pieces, ["", " a", " ", " b"]);
    }

    #[test]
    fn think_and_cite() {
        let r = plan(r#"{"messages":[{"role":"user","content":" Think \n about  x \n"}]}"#);
        let kind = r.unwrap().kind;
        assert_eq!(
            kind,
            ReplyKind::Think {
                subject: "about  x".into(),
                text: Text::Tokens(8)
            }
        );
        let r = plan(r#"{"messages":[{"role":"user","content":"think"}]}"#).unwrap();
        assert!(matches!(r.kind, ReplyKind::Think { subject, .. } if subject == "it"));
        // "thinking" is not "think\b"; "cite" is a Responses API rule only.
        for text in ["thinking", "cite"] {
            let body = format!(r#"{{"messages":[{{"role":"user","content":"{text}"}}]}}"#);
            assert_eq!(plan(&body).unwrap().kind, ReplyKind::Text(Text::Tokens(8)));
        }
        let cfg = Config::default();
        let r = plan_for_user_text("Cite!", |_| false, Api::Responses, &cfg).unwrap();
        assert!(matches!(r.kind, ReplyKind::Cite(_)));
        assert_eq!(cite_span(), (13, 23));
        assert_eq!(
            chat_reasoning("it"),
            "Thinking about it.\n\nChecking the answer."
        );
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
    fn call_calls_an_offered_tool_with_compact_object_arguments() {
        let cfg = Config::default();
        let plan = |text: &str| {
            let offered = |name: &str| ["show_task", "a.b-c"].contains(&name);
            match plan_for_user_text(text, offered, Api::ChatCompletions, &cfg)
                .unwrap()
                .kind
            {
                ReplyKind::ToolCalls(calls) => {
                    assert_eq!(calls.len(), 1);
                    Some((calls[0].name.clone(), calls[0].arguments.clone()))
                }
                _ => None,
            }
        };
        let call = |name: &str, args: &str| Some((name.to_owned(), args.to_owned()));
        assert_eq!(
            plan(" Call show_task { \"task_id\" : \"t\u{e9}\", \"n\": 1.50, \"n\": [1e300] } "),
            call("show_task", "{\"task_id\":\"t\u{e9}\",\"n\":[1e+300]}")
        );
        assert_eq!(plan("call a.b-c"), call("a.b-c", "{}"));
        for text in ["call show_task {not json}", "call show_task {} {}"] {
            assert_eq!(plan(text), call("show_task", "{}"), "{text}");
        }
        // Not offered (names are exact), or not the pattern: the default reply.
        for text in [
            "call Show_task",
            "call other {}",
            "call show_task x",
            "calls show_task",
        ] {
            assert_eq!(plan(text), None, "{text}");
        }
    }

    #[test]
    fn tool_command_without_tool_falls_through() {
        let r = plan(r#"{"messages":[{"role":"user","content":" add task x "}]}"#).unwrap();
        assert_eq!(r.kind, ReplyKind::Text(Text::Tokens(8)));
    }
}
