//! Request and chunk shapes of the Chat Completions API, as lenient as providers need.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::{Arc, OnceLock};

pub use crate::tool_schema::ToolSchema;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::ModelEvent;
use crate::config::ReasoningEffort;

/// A message sent to the model.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "role", rename_all = "lowercase")]
pub enum ChatMessage {
    System {
        content: String,
    },
    User {
        content: UserContent,
    },
    Assistant {
        #[serde(skip_serializing_if = "Option::is_none")]
        content: Option<String>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<ToolCallRequest>,
    },
    /// An item only the Responses API takes back (an encrypted reasoning item), passed as is;
    /// Chat Completions requests leave it out.
    #[serde(skip)]
    ProviderItem(serde_json::Value),
    Tool {
        tool_call_id: String,
        content: String,
    },
}

/// A user message's content: plain text, or parts when it carries attachments.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum UserContent {
    Text(String),
    Parts(Vec<ContentPart>),
}

impl From<String> for UserContent {
    fn from(text: String) -> Self {
        UserContent::Text(text)
    }
}

impl From<&str> for UserContent {
    fn from(text: &str) -> Self {
        UserContent::Text(text.to_string())
    }
}

/// A part of a user message's content, as Chat Completions takes it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentPart {
    Text {
        text: String,
    },
    ImageUrl {
        image_url: ImageUrl,
    },
    File {
        file: FileData,
    },
    /// An attachment whose content is put in place before the request is sent
    /// (`attachments::model_input`); never serialized.
    #[serde(skip)]
    Attachment(crate::protocol::Attachment),
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ImageUrl {
    pub url: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FileData {
    pub filename: String,
    pub file_data: String,
}

/// A tool call the model made, as replayed in history.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ToolCallRequest {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub function: FunctionCall,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FunctionCall {
    pub name: String,
    pub arguments: String,
}

impl ToolCallRequest {
    pub fn function(id: String, name: String, arguments: String) -> Self {
        ToolCallRequest {
            id,
            kind: "function",
            function: FunctionCall { name, arguments },
        }
    }
}

/// A function tool offered to the model. Its JSON is written by the first request that
/// offers it and copied by the others: an offer is shared by the turns of every thread that
/// sees the same tools, which would escape every name, description and schema again for each
/// request otherwise.
#[derive(Clone, Debug)]
pub struct ToolSpec {
    /// Private: the JSON written from it is kept.
    function: FunctionSpec,
    json: Arc<OnceLock<Box<RawValue>>>,
}

impl ToolSpec {
    /// A function tool (`"type": "function"`, the only kind Chat Completions takes).
    pub fn new(function: FunctionSpec) -> Self {
        ToolSpec {
            function,
            json: Arc::default(),
        }
    }

    pub fn function(&self) -> &FunctionSpec {
        &self.function
    }
}

impl PartialEq for ToolSpec {
    fn eq(&self, other: &Self) -> bool {
        self.function == other.function
    }
}

impl Serialize for ToolSpec {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Written<'a> {
            #[serde(rename = "type")]
            kind: &'static str,
            function: &'a FunctionSpec,
        }
        let json = self.json.get_or_init(|| {
            let written = Written {
                kind: "function",
                function: &self.function,
            };
            serde_json::value::to_raw_value(&written).expect("a tool's spec serializes")
        });
        json.serialize(serializer)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FunctionSpec {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub parameters: ToolSchema,
}

#[derive(Serialize)]
pub(super) struct ChatRequest<'a> {
    pub model: &'a str,
    #[serde(serialize_with = "chat_messages")]
    pub messages: &'a [ChatMessage],
    pub stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tools: Option<&'a [ToolSpec]>,
    /// `{"type":"function","function":{"name":…}}` when a tool must be called.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_effort: Option<ReasoningEffort>,
}

/// The messages Chat Completions takes (items only the Responses API takes left out).
fn chat_messages<S: serde::Serializer>(messages: &&[ChatMessage], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(
        messages
            .iter()
            .filter(|m| !matches!(m, ChatMessage::ProviderItem(_))),
    )
}

/// One event's chunk turned into events (the parse `sse::events` is given): its strings are
/// read where they lie in the event's bytes, only the deltas are copied out.
pub(super) fn parse_chunk(data: &[u8], out: &mut VecDeque<ModelEvent>) -> serde_json::Result<()> {
    let chunk: Chunk = super::sse::json(data)?;
    chunk.push_events(out);
    Ok(())
}

#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(borrow)]
    choices: Option<FirstChoice<'a>>,
    #[serde(borrow)]
    model: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct ChoiceChunk<'a> {
    #[serde(borrow)]
    delta: Option<Delta<'a>>,
    #[serde(borrow)]
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(borrow)]
    content: Option<Cow<'a, str>>,
    /// The reasoning extension of vLLM, DeepSeek, llama.cpp (`reasoning` on some others).
    #[serde(borrow)]
    reasoning_content: Option<Cow<'a, str>>,
    #[serde(borrow)]
    reasoning: Option<Cow<'a, str>>,
    #[serde(borrow)]
    tool_calls: Option<Vec<ToolCallChunk<'a>>>,
}

#[derive(Deserialize)]
struct ToolCallChunk<'a> {
    #[serde(default)]
    index: u32,
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    function: Option<FunctionChunk<'a>>,
}

#[derive(Deserialize)]
struct FunctionChunk<'a> {
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    arguments: Option<Cow<'a, str>>,
}

/// A chunk's `choices`: the first one (we never ask for `n > 1`), the others skipped unread.
struct FirstChoice<'a>(Option<ChoiceChunk<'a>>);

impl<'de: 'a, 'a> Deserialize<'de> for FirstChoice<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct First<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for First<'a> {
            type Value = FirstChoice<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list of choices")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                let first = seq.next_element::<ChoiceChunk<'a>>()?;
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(FirstChoice(first))
            }
        }
        deserializer.deserialize_seq(First(std::marker::PhantomData))
    }
}

impl Chunk<'_> {
    fn push_events(self, out: &mut VecDeque<ModelEvent>) {
        let Some(choice) = self.choices.and_then(|c| c.0) else {
            return;
        };
        let owned = |text: Option<Cow<str>>| text.map(Cow::into_owned);
        if let Some(delta) = choice.delta {
            let reasoning = delta.reasoning_content.or(delta.reasoning);
            if let Some(thought) = reasoning.filter(|t| !t.is_empty()) {
                out.push_back(ModelEvent::ReasoningDelta(thought.into_owned()));
            }
            if let Some(text) = delta.content.filter(|t| !t.is_empty()) {
                out.push_back(ModelEvent::TextDelta(text.into_owned()));
            }
            for call in delta.tool_calls.into_iter().flatten() {
                let (name, arguments) = match call.function {
                    Some(f) => (owned(f.name), owned(f.arguments).unwrap_or_default()),
                    None => (None, String::new()),
                };
                out.push_back(ModelEvent::ToolCallDelta {
                    index: call.index,
                    id: owned(call.id),
                    name,
                    arguments,
                });
            }
        }
        if let Some(reason) = choice.finish_reason.filter(|r| !r.is_empty()) {
            out.push_back(ModelEvent::Finished {
                reason: reason.into_owned(),
                model: owned(self.model),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_serialize_as_openai_expects() {
        let msgs = vec![
            ChatMessage::System {
                content: "be brief".into(),
            },
            ChatMessage::User {
                content: "hi".into(),
            },
            ChatMessage::Assistant {
                content: Some("hello".into()),
                tool_calls: vec![],
            },
        ];
        assert_eq!(
            serde_json::to_string(&msgs).unwrap(),
            r#"[{"role":"system","content":"be brief"},{"role":"user","content":"hi"},{"role":"assistant","content":"hello"}]"#
        );
    }

    #[test]
    fn the_reasoning_effort_is_sent_by_its_name_and_left_out_when_unset() {
        let messages = [ChatMessage::User {
            content: "hi".into(),
        }];
        let request = |reasoning_effort| ChatRequest {
            model: "m",
            messages: &messages,
            stream: true,
            tools: None,
            tool_choice: None,
            reasoning_effort,
        };
        assert_eq!(
            serde_json::to_string(&request(Some(ReasoningEffort::Minimal))).unwrap(),
            r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true,"reasoning_effort":"minimal"}"#
        );
        assert_eq!(
            serde_json::to_string(&request(None)).unwrap(),
            r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true}"#
        );
    }

    #[test]
    fn a_tool_spec_is_written_once_as_chat_completions_takes_it() {
        let spec = ToolSpec::new(FunctionSpec {
            name: "add".into(),
            description: Some("Add \"it\"".into()),
            parameters: ToolSchema::new(&serde_json::json!({"type": "object"})),
        });
        let expected = r#"{"type":"function","function":{"name":"add","description":"Add \"it\"","parameters":{"type":"object"}}}"#;
        assert_eq!(serde_json::to_string(&spec).unwrap(), expected);
        let copy = spec.clone();
        assert!(copy.json.get().is_some(), "a copy shares the JSON written");
        assert_eq!(
            serde_json::to_string(&[copy]).unwrap(),
            format!("[{expected}]")
        );
        let bare = ToolSpec::new(FunctionSpec {
            name: "x".into(),
            description: None,
            parameters: ToolSchema::new(&serde_json::json!({})),
        });
        assert_eq!(
            serde_json::to_string(&bare).unwrap(),
            r#"{"type":"function","function":{"name":"x","parameters":{}}}"#
        );
    }

    fn parsed(chunk: &str) -> Vec<ModelEvent> {
        let mut out = VecDeque::new();
        parse_chunk(chunk.as_bytes(), &mut out).unwrap();
        out.into_iter().collect()
    }

    #[test]
    fn lenient_chunks() {
        assert_eq!(
            parsed(
                r#"{"id":"x","choices":[{"index":0,"delta":{"role":"assistant","content":"Hi","refusal":null},"finish_reason":""}]}"#
            ),
            vec![ModelEvent::TextDelta("Hi".into())]
        );
        // No choices, null ones, or a usage chunk: no events.
        for empty in [
            r#"{"choices":[]}"#,
            r#"{"choices":null}"#,
            r#"{"usage":{"total_tokens":3}}"#,
        ] {
            assert_eq!(parsed(empty), vec![], "{empty}");
        }
    }

    #[test]
    fn the_first_choice_counts_and_escaped_strings_come_out_unescaped() {
        let chunk = r#"{"model":"m\u00e9","choices":[{"delta":{"content":"a\"b\n","reasoning":"t\u00e9","tool_calls":[{"index":1,"id":"c\/1","function":{"name":"add","arguments":"{\"x\":1}"}}]},"finish_reason":"stop"},{"delta":{"content":"ignored"},"finish_reason":"length"}]}"#;
        assert_eq!(
            parsed(chunk),
            vec![
                ModelEvent::ReasoningDelta("t\u{e9}".into()),
                ModelEvent::TextDelta("a\"b\n".into()),
                ModelEvent::ToolCallDelta {
                    index: 1,
                    id: Some("c/1".into()),
                    name: Some("add".into()),
                    arguments: "{\"x\":1}".into()
                },
                ModelEvent::Finished {
                    reason: "stop".into(),
                    model: Some("m\u{e9}".into())
                },
            ]
        );
        let mut out = VecDeque::new();
        assert!(
            parse_chunk(br#"{"choices":{"a":1}}"#, &mut out).is_err(),
            "not a list"
        );
    }
}
