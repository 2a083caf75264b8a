//! The Responses API request, typed like the Chat Completions one: our history sent
//! statelessly (`store: false`), the leading system message as `instructions`, everything
//! else an input item; tool schemas written as the bytes they were serialized to once.

use serde::Serialize;
use serde_json::Value;

use super::wire::{ChatMessage, ContentPart, ToolSpec, UserContent};
use super::ModelSettings;
use crate::config::{HostedTool, ReasoningEffort, ReasoningSummary};
use crate::tool_schema::ToolSchema;

/// The request body, its keys in the order the API documents them.
#[derive(Serialize)]
pub(super) struct ResponsesRequest<'a> {
    model: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    instructions: Option<&'a str>,
    input: Vec<InputItem<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<Tool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<Forced<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning: Option<Reasoning>,
    store: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    include: Vec<&'static str>,
    stream: bool,
}

/// One input item.
#[derive(Serialize)]
#[serde(untagged)]
enum InputItem<'a> {
    Message {
        role: &'static str,
        content: MessageContent<'a>,
    },
    Typed(TypedItem<'a>),
    /// An item the provider handed back (encrypted reasoning), as it came.
    Provider(&'a Value),
}

#[derive(Serialize)]
#[serde(untagged)]
enum MessageContent<'a> {
    Text(&'a str),
    Parts(Vec<Part<'a>>),
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Part<'a> {
    InputText {
        text: &'a str,
    },
    InputImage {
        image_url: &'a str,
    },
    InputFile {
        filename: &'a str,
        file_data: &'a str,
    },
    OutputText {
        text: &'a str,
    },
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum TypedItem<'a> {
    FunctionCall {
        call_id: &'a str,
        name: &'a str,
        arguments: &'a str,
    },
    FunctionCallOutput {
        call_id: &'a str,
        output: &'a str,
    },
}

/// A tool offered: ours (a function), or one the provider runs (`[[hosted_tools]]`, as
/// configured).
#[derive(Serialize)]
#[serde(untagged)]
enum Tool<'a> {
    Function(FunctionTool<'a>),
    Hosted(&'a Value),
}

#[derive(Serialize)]
struct FunctionTool<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    parameters: &'a ToolSchema,
}

/// The tool the model must call: a function by name, or a hosted tool by its type.
#[derive(Serialize)]
#[serde(untagged)]
enum Forced<'a> {
    Function {
        #[serde(rename = "type")]
        kind: &'static str,
        name: &'a str,
    },
    Hosted {
        #[serde(rename = "type")]
        kind: &'a str,
    },
}

#[derive(Serialize)]
struct Reasoning {
    #[serde(skip_serializing_if = "Option::is_none")]
    effort: Option<ReasoningEffort>,
    #[serde(skip_serializing_if = "Option::is_none")]
    summary: Option<ReasoningSummary>,
}

/// The request for `messages`, offering `tools` and the `hosted` tools; `forced` names a
/// tool the model must call (a function's name, or a hosted tool's type).
pub(super) fn request<'a>(
    settings: &'a ModelSettings,
    messages: &'a [ChatMessage],
    tools: &'a [ToolSpec],
    hosted: &'a [HostedTool],
    forced: Option<&'a str>,
) -> ResponsesRequest<'a> {
    let mut instructions = None;
    let mut input = Vec::with_capacity(messages.len());
    for (index, message) in messages.iter().enumerate() {
        match message {
            ChatMessage::System { content } if index == 0 => instructions = Some(content.as_str()),
            other => input_items(other, &mut input),
        }
    }
    let reasoning = (settings.reasoning_effort.is_some() || settings.reasoning_summary.is_some())
        .then_some(Reasoning {
            effort: settings.reasoning_effort,
            summary: settings.reasoning_summary,
        });
    ResponsesRequest {
        model: &settings.name,
        instructions,
        input,
        tools: tools
            .iter()
            .map(|t| {
                Tool::Function(FunctionTool {
                    kind: "function",
                    name: &t.function().name,
                    description: t.function().description.as_deref(),
                    parameters: &t.function().parameters,
                })
            })
            .chain(hosted.iter().map(|t| Tool::Hosted(&t.spec)))
            .collect(),
        tool_choice: forced.map(|name| match hosted.iter().find(|t| t.kind == name) {
            Some(tool) => Forced::Hosted { kind: &tool.kind },
            None => Forced::Function {
                kind: "function",
                name,
            },
        }),
        include: include(reasoning.is_some(), hosted),
        reasoning,
        store: false,
        stream: true,
    }
}

/// What the response must carry beyond its defaults. Stateless: nothing is kept by the
/// provider, so reasoning comes back encrypted for the next call of the turn (after tools) to
/// continue it; a web search lists the sources it opened and a file search its results, which
/// the turn shows in their steps.
fn include(reasoning: bool, hosted: &[HostedTool]) -> Vec<&'static str> {
    let offers = |kind: &str| hosted.iter().any(|t| t.kind == kind);
    [
        (reasoning, "reasoning.encrypted_content"),
        (offers("web_search"), "web_search_call.action.sources"),
        (offers("file_search"), "file_search_call.results"),
    ]
    .into_iter()
    .filter_map(|(wanted, what)| wanted.then_some(what))
    .collect()
}

/// The input items of one message (an assistant message with tool calls is several).
fn input_items<'a>(message: &'a ChatMessage, input: &mut Vec<InputItem<'a>>) {
    match message {
        ChatMessage::System { content } => input.push(InputItem::Message {
            role: "system",
            content: MessageContent::Text(content),
        }),
        ChatMessage::User { content } => input.push(InputItem::Message {
            role: "user",
            content: MessageContent::Parts(user_parts(content)),
        }),
        ChatMessage::Assistant {
            content,
            tool_calls,
        } => {
            if let Some(text) = content.as_deref().filter(|t| !t.is_empty()) {
                input.push(InputItem::Message {
                    role: "assistant",
                    content: MessageContent::Parts(vec![Part::OutputText { text }]),
                });
            }
            input.extend(tool_calls.iter().map(|call| {
                InputItem::Typed(TypedItem::FunctionCall {
                    call_id: &call.id,
                    name: &call.function.name,
                    arguments: &call.function.arguments,
                })
            }));
        }
        ChatMessage::Tool {
            tool_call_id,
            content,
        } => input.push(InputItem::Typed(TypedItem::FunctionCallOutput {
            call_id: tool_call_id,
            output: content,
        })),
        ChatMessage::ProviderItem(item) => input.push(InputItem::Provider(item)),
    }
}

fn user_parts(content: &UserContent) -> Vec<Part<'_>> {
    match content {
        UserContent::Text(text) => vec![Part::InputText { text }],
        UserContent::Parts(parts) => parts
            .iter()
            .filter_map(|part| match part {
                ContentPart::Text { text } => Some(Part::InputText { text }),
                ContentPart::ImageUrl { image_url } => Some(Part::InputImage {
                    image_url: &image_url.url,
                }),
                ContentPart::File { file } => Some(Part::InputFile {
                    filename: &file.filename,
                    file_data: &file.file_data,
                }),
                // Put in place before any call; none is left by then.
                ContentPart::Attachment(_) => None,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_request_is_stateless_with_instructions_items_and_flat_tools() {
        let settings = ModelSettings {
            base_url: "http://x/v1".into(),
            name: "m".into(),
            api_key: None,
            timeout: std::time::Duration::from_secs(1),
            instructions: String::new(),
            http2_prior_knowledge: false,
            reasoning_effort: Some(ReasoningEffort::Low),
            reasoning_summary: Some(ReasoningSummary::Auto),
            api: super::super::ModelApi::Responses,
            hosted_tools: std::sync::Arc::from([]),
        };
        let messages = vec![
            ChatMessage::System {
                content: "Be brief.".into(),
            },
            ChatMessage::User {
                content: "hi".into(),
            },
            ChatMessage::ProviderItem(
                json!({"type": "reasoning", "id": "rs_1", "encrypted_content": "enc"}),
            ),
            ChatMessage::Assistant {
                content: None,
                tool_calls: vec![crate::model::ToolCallRequest::function(
                    "call_1".into(),
                    "add".into(),
                    "{}".into(),
                )],
            },
            ChatMessage::Tool {
                tool_call_id: "call_1".into(),
                content: "ok".into(),
            },
        ];
        let tools = vec![ToolSpec::new(crate::model::FunctionSpec {
            name: "add".into(),
            description: None,
            parameters: ToolSchema::new(&json!({"type": "object"})),
        })];
        let sent = serde_json::to_string(&request(&settings, &messages, &tools, &[], Some("add")))
            .unwrap();
        assert_eq!(
            sent,
            json!({
                "model": "m",
                "instructions": "Be brief.",
                "input": [
                    {"role": "user", "content": [{"type": "input_text", "text": "hi"}]},
                    {"type": "reasoning", "id": "rs_1", "encrypted_content": "enc"},
                    {"type": "function_call", "call_id": "call_1", "name": "add", "arguments": "{}"},
                    {"type": "function_call_output", "call_id": "call_1", "output": "ok"}
                ],
                "tools": [{"type": "function", "name": "add", "parameters": {"type": "object"}}],
                "tool_choice": {"type": "function", "name": "add"},
                "reasoning": {"effort": "low", "summary": "auto"},
                "store": false,
                "include": ["reasoning.encrypted_content"],
                "stream": true
            })
            .to_string()
        );
    }

    #[test]
    fn hosted_tools_follow_ours_as_configured_and_are_forced_by_type() {
        let settings = ModelSettings {
            base_url: "http://x/v1".into(),
            name: "m".into(),
            api_key: None,
            timeout: std::time::Duration::from_secs(1),
            instructions: String::new(),
            http2_prior_knowledge: false,
            reasoning_effort: None,
            reasoning_summary: None,
            api: super::super::ModelApi::Responses,
            hosted_tools: std::sync::Arc::from([]),
        };
        let hosted = [HostedTool {
            kind: "image_generation".into(),
            spec: json!({"type": "image_generation", "partial_images": 1}),
        }];
        let messages = vec![ChatMessage::User {
            content: "draw".into(),
        }];
        let sent = |forced| {
            serde_json::to_value(request(&settings, &messages, &[], &hosted, forced)).unwrap()
        };
        let body = sent(Some("image_generation"));
        assert_eq!(
            body["tools"],
            json!([{"type": "image_generation", "partial_images": 1}])
        );
        assert_eq!(body["tool_choice"], json!({"type": "image_generation"}));
        assert_eq!(sent(None).get("tool_choice"), None);
        assert_eq!(body.get("include"), None);
        let searches = ["web_search", "file_search"].map(|kind| HostedTool {
            kind: kind.into(),
            spec: json!({ "type": kind }),
        });
        assert_eq!(
            include(true, &searches),
            [
                "reasoning.encrypted_content",
                "web_search_call.action.sources",
                "file_search_call.results"
            ]
        );
    }
}
