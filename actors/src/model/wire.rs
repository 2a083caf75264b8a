//! Request and chunk shapes of the Chat Completions API, as lenient as providers need.

use std::collections::VecDeque;

pub use crate::tool_schema::ToolSchema;
use serde::{Deserialize, Serialize};

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

/// A function tool offered to the model.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ToolSpec {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub function: FunctionSpec,
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

#[derive(Deserialize)]
pub(super) struct Chunk {
    #[serde(default)]
    choices: Vec<ChoiceChunk>,
    #[serde(default)]
    model: Option<String>,
}

#[derive(Deserialize)]
struct ChoiceChunk {
    #[serde(default)]
    delta: Option<Delta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
struct Delta {
    #[serde(default)]
    content: Option<String>,
    /// The reasoning extension of vLLM, DeepSeek, llama.cpp (`reasoning` on some others).
    #[serde(default)]
    reasoning_content: Option<String>,
    #[serde(default)]
    reasoning: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<ToolCallChunk>>,
}

#[derive(Deserialize)]
struct ToolCallChunk {
    #[serde(default)]
    index: u32,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<FunctionChunk>,
}

#[derive(Deserialize)]
struct FunctionChunk {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<String>,
}

impl super::IntoEvents for Chunk {
    /// Turns one chunk into events (only the first choice counts: we never ask for `n > 1`).
    fn into_events(self, out: &mut VecDeque<ModelEvent>) {
        let Chunk { choices, model } = self;
        let Some(choice) = choices.into_iter().next() else {
            return;
        };
        if let Some(delta) = choice.delta {
            let reasoning = delta.reasoning_content.or(delta.reasoning);
            if let Some(thought) = reasoning.filter(|t| !t.is_empty()) {
                out.push_back(ModelEvent::ReasoningDelta(thought));
            }
            if let Some(text) = delta.content.filter(|t| !t.is_empty()) {
                out.push_back(ModelEvent::TextDelta(text));
            }
            for call in delta.tool_calls.into_iter().flatten() {
                let (name, arguments) = match call.function {
                    Some(f) => (f.name, f.arguments.unwrap_or_default()),
                    None => (None, String::new()),
                };
                out.push_back(ModelEvent::ToolCallDelta {
                    index: call.index,
                    id: call.id,
                    name,
                    arguments,
                });
            }
        }
        if let Some(reason) = choice.finish_reason.filter(|r| !r.is_empty()) {
            out.push_back(ModelEvent::Finished { reason, model });
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
    fn lenient_chunks() {
        use crate::model::IntoEvents;
        let chunk: Chunk = serde_json::from_str(
            r#"{"id":"x","choices":[{"index":0,"delta":{"role":"assistant","content":"Hi","refusal":null},"finish_reason":""}]}"#,
        )
        .unwrap();
        let mut out = VecDeque::new();
        chunk.into_events(&mut out);
        assert_eq!(
            out.into_iter().collect::<Vec<_>>(),
            vec![ModelEvent::TextDelta("Hi".into())]
        );
    }
}
