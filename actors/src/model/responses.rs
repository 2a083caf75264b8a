//! The Responses API (`model.api = "responses"`): our history sent statelessly (`store:
//! false`; encrypted reasoning items handed back within a turn), and the streamed events
//! turned into the same [`ModelEvent`]s as Chat Completions chunks, plus reasoning
//! summaries and citations (protocol §8.3, §8.5).

use std::collections::VecDeque;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::wire::{ChatMessage, ContentPart, ToolSpec, UserContent};
use super::{IntoEvents, ModelEvent, ModelSettings};
use crate::protocol::{Annotation, AnnotationTag};

/// The request body: the leading system message becomes `instructions`, everything else an
/// input item.
pub(super) fn request(
    settings: &ModelSettings,
    messages: &[ChatMessage],
    tools: &[ToolSpec],
    forced: Option<&str>,
) -> Value {
    let mut body = Map::new();
    body.insert("model".into(), settings.name.clone().into());
    let mut input = Vec::with_capacity(messages.len());
    for (index, message) in messages.iter().enumerate() {
        match message {
            ChatMessage::System { content } if index == 0 => {
                body.insert("instructions".into(), content.clone().into());
            }
            ChatMessage::System { content } => {
                input.push(json!({ "role": "system", "content": content }));
            }
            ChatMessage::User { content } => {
                input.push(json!({ "role": "user", "content": user_content(content) }));
            }
            ChatMessage::Assistant {
                content,
                tool_calls,
            } => {
                if let Some(text) = content.as_ref().filter(|t| !t.is_empty()) {
                    input.push(json!({
                        "role": "assistant",
                        "content": [{ "type": "output_text", "text": text }]
                    }));
                }
                for call in tool_calls {
                    input.push(json!({
                        "type": "function_call",
                        "call_id": call.id,
                        "name": call.function.name,
                        "arguments": call.function.arguments
                    }));
                }
            }
            ChatMessage::Tool {
                tool_call_id,
                content,
            } => input.push(json!({
                "type": "function_call_output",
                "call_id": tool_call_id,
                "output": content
            })),
            ChatMessage::ProviderItem(item) => input.push(item.clone()),
        }
    }
    body.insert("input".into(), Value::Array(input));
    if !tools.is_empty() {
        let tools: Vec<Value> = tools
            .iter()
            .map(|t| {
                let mut tool = Map::new();
                tool.insert("type".into(), "function".into());
                tool.insert("name".into(), t.function.name.clone().into());
                if let Some(description) = &t.function.description {
                    tool.insert("description".into(), description.clone().into());
                }
                tool.insert("parameters".into(), t.function.parameters.to_value());
                Value::Object(tool)
            })
            .collect();
        body.insert("tools".into(), Value::Array(tools));
    }
    if let Some(name) = forced {
        body.insert(
            "tool_choice".into(),
            json!({ "type": "function", "name": name }),
        );
    }
    let reasons = settings.reasoning_effort.is_some() || settings.reasoning_summary.is_some();
    if reasons {
        let mut reasoning = Map::new();
        if let Some(effort) = &settings.reasoning_effort {
            reasoning.insert("effort".into(), effort.clone().into());
        }
        if let Some(summary) = &settings.reasoning_summary {
            reasoning.insert("summary".into(), summary.clone().into());
        }
        body.insert("reasoning".into(), Value::Object(reasoning));
    }
    // Stateless: nothing is kept by the provider; reasoning comes back encrypted so the next
    // call of the turn (after tools) continues it.
    body.insert("store".into(), false.into());
    if reasons {
        body.insert("include".into(), json!(["reasoning.encrypted_content"]));
    }
    body.insert("stream".into(), true.into());
    Value::Object(body)
}

fn user_content(content: &UserContent) -> Value {
    match content {
        UserContent::Text(text) => json!([{ "type": "input_text", "text": text }]),
        UserContent::Parts(parts) => Value::Array(
            parts
                .iter()
                .filter_map(|part| match part {
                    ContentPart::Text { text } => {
                        Some(json!({ "type": "input_text", "text": text }))
                    }
                    ContentPart::ImageUrl { image_url } => {
                        Some(json!({ "type": "input_image", "image_url": image_url.url }))
                    }
                    ContentPart::File { file } => Some(json!({
                        "type": "input_file",
                        "filename": file.filename,
                        "file_data": file.file_data
                    })),
                    // Put in place before any call; none is left by then.
                    ContentPart::Attachment(_) => None,
                })
                .collect(),
        ),
    }
}

/// One streamed event, as lenient as the chunks: only what we read.
#[derive(Deserialize)]
pub(super) struct StreamEvent {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    delta: Option<String>,
    #[serde(default)]
    output_index: Option<u32>,
    #[serde(default)]
    summary_index: Option<u32>,
    #[serde(default)]
    item: Option<Value>,
    #[serde(default)]
    annotation: Option<Value>,
    #[serde(default)]
    response: Option<Value>,
    #[serde(default)]
    message: Option<String>,
}

impl IntoEvents for StreamEvent {
    fn into_events(self, out: &mut VecDeque<ModelEvent>) {
        let index = self.output_index.unwrap_or(0);
        match self.kind.as_str() {
            "response.output_text.delta" => {
                if let Some(delta) = self.delta.filter(|d| !d.is_empty()) {
                    out.push_back(ModelEvent::TextDelta(delta));
                }
            }
            // Each summary part is a thought: parts after the first start a new paragraph.
            "response.reasoning_summary_part.added" if self.summary_index.unwrap_or(0) > 0 => {
                out.push_back(ModelEvent::ReasoningDelta("\n\n".into()));
            }
            "response.reasoning_summary_text.delta" | "response.reasoning_text.delta" => {
                if let Some(delta) = self.delta.filter(|d| !d.is_empty()) {
                    out.push_back(ModelEvent::ReasoningDelta(delta));
                }
            }
            "response.output_item.added" => {
                let Some(item) = self.item else { return };
                if item["type"] == "function_call" {
                    out.push_back(ModelEvent::ToolCallDelta {
                        index,
                        id: item["call_id"].as_str().map(str::to_string),
                        name: item["name"].as_str().map(str::to_string),
                        arguments: item["arguments"].as_str().unwrap_or("").to_string(),
                    });
                }
            }
            "response.function_call_arguments.delta" => {
                if let Some(delta) = self.delta {
                    out.push_back(ModelEvent::ToolCallDelta {
                        index,
                        id: None,
                        name: None,
                        arguments: delta,
                    });
                }
            }
            "response.output_text.annotation.added" => {
                if let Some(annotation) = self.annotation.as_ref().and_then(citation) {
                    out.push_back(ModelEvent::Annotation(annotation));
                }
            }
            "response.output_item.done" => {
                let Some(item) = self.item else { return };
                if item["type"] == "reasoning" && item.get("encrypted_content").is_some() {
                    out.push_back(ModelEvent::ReasoningItem(handback(item)));
                }
            }
            "response.completed" => {
                if let Some(usage) = self.response.as_ref().map(|r| &r["usage"]) {
                    if let (Some(input), Some(output)) = (
                        usage["input_tokens"].as_u64(),
                        usage["output_tokens"].as_u64(),
                    ) {
                        out.push_back(ModelEvent::Usage { input, output });
                    }
                }
                let called = self
                    .response
                    .as_ref()
                    .and_then(|r| r["output"].as_array())
                    .is_some_and(|o| o.iter().any(|i| i["type"] == "function_call"));
                out.push_back(ModelEvent::Finished {
                    reason: if called { "tool_calls" } else { "stop" }.into(),
                });
            }
            "response.incomplete" => out.push_back(ModelEvent::Finished {
                reason: "length".into(),
            }),
            "response.failed" => {
                let message = self
                    .response
                    .as_ref()
                    .and_then(|r| r["error"]["message"].as_str())
                    .unwrap_or("the response failed");
                out.push_back(ModelEvent::Failed(message.to_string()));
            }
            "error" => out.push_back(ModelEvent::Failed(
                self.message.unwrap_or_else(|| "error event".into()),
            )),
            _ => {}
        }
    }
}

/// A reasoning item as the next request takes it back (without its status).
fn handback(mut item: Value) -> Value {
    if let Some(map) = item.as_object_mut() {
        map.remove("status");
    }
    item
}

/// protocol §8.3: `url_citation` → a url source (`index` = `end_index`), `file_citation` → a
/// file source titled by its file name (`index` = the citation's index); others are dropped.
fn citation(annotation: &Value) -> Option<Annotation> {
    match annotation["type"].as_str()? {
        "url_citation" => {
            let url = annotation["url"].as_str()?;
            let title = annotation["title"].as_str().unwrap_or(url);
            Some(Annotation {
                kind: AnnotationTag,
                source: json!({ "title": title, "type": "url", "url": url }),
                index: annotation["end_index"].as_i64(),
            })
        }
        "file_citation" | "container_file_citation" => {
            let filename = annotation["filename"].as_str()?;
            let index = match annotation["type"].as_str() {
                Some("file_citation") => annotation["index"].as_i64(),
                _ => annotation["end_index"].as_i64(),
            };
            Some(Annotation {
                kind: AnnotationTag,
                source: json!({ "title": filename, "type": "file", "filename": filename }),
                index,
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(lines: &[Value]) -> Vec<ModelEvent> {
        let mut out = VecDeque::new();
        for line in lines {
            serde_json::from_value::<StreamEvent>(line.clone())
                .unwrap()
                .into_events(&mut out);
        }
        out.into_iter().collect()
    }

    #[test]
    fn text_reasoning_calls_and_citations_become_events() {
        let got = events(&[
            json!({"type": "response.created", "sequence_number": 0, "response": {}}),
            json!({"type": "response.reasoning_summary_part.added", "summary_index": 0}),
            json!({"type": "response.reasoning_summary_text.delta", "summary_index": 0, "delta": "First"}),
            json!({"type": "response.reasoning_summary_part.added", "summary_index": 1}),
            json!({"type": "response.reasoning_summary_text.delta", "summary_index": 1, "delta": "Second"}),
            json!({"type": "response.output_item.done", "output_index": 0, "item": {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "enc", "status": "completed"}}),
            json!({"type": "response.output_item.added", "output_index": 1, "item": {"type": "function_call", "call_id": "call_1", "name": "add_task", "arguments": ""}}),
            json!({"type": "response.function_call_arguments.delta", "output_index": 1, "delta": "{\"a\":1}"}),
            json!({"type": "response.output_text.delta", "output_index": 2, "delta": "See"}),
            json!({"type": "response.output_text.annotation.added", "annotation": {"type": "url_citation", "url": "https://e.x/", "title": "E", "start_index": 0, "end_index": 3}}),
            json!({"type": "response.output_text.annotation.added", "annotation": {"type": "mystery"}}),
            json!({"type": "response.completed", "response": {"output": [{"type": "function_call"}], "usage": {"input_tokens": 12, "output_tokens": 5}}}),
        ]);
        assert_eq!(
            got,
            vec![
                ModelEvent::ReasoningDelta("First".into()),
                ModelEvent::ReasoningDelta("\n\n".into()),
                ModelEvent::ReasoningDelta("Second".into()),
                ModelEvent::ReasoningItem(
                    json!({"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "enc"})
                ),
                ModelEvent::ToolCallDelta {
                    index: 1,
                    id: Some("call_1".into()),
                    name: Some("add_task".into()),
                    arguments: String::new()
                },
                ModelEvent::ToolCallDelta {
                    index: 1,
                    id: None,
                    name: None,
                    arguments: "{\"a\":1}".into()
                },
                ModelEvent::TextDelta("See".into()),
                ModelEvent::Annotation(Annotation {
                    kind: AnnotationTag,
                    source: json!({"title": "E", "type": "url", "url": "https://e.x/"}),
                    index: Some(3),
                }),
                ModelEvent::Usage {
                    input: 12,
                    output: 5
                },
                ModelEvent::Finished {
                    reason: "tool_calls".into()
                },
            ]
        );
    }

    #[test]
    fn the_request_is_stateless_with_instructions_items_and_flat_tools() {
        let settings = ModelSettings {
            base_url: "http://x/v1".into(),
            name: "m".into(),
            api_key: None,
            timeout: std::time::Duration::from_secs(1),
            instructions: String::new(),
            http2_prior_knowledge: false,
            reasoning_effort: Some("low".into()),
            reasoning_summary: Some("auto".into()),
            api: super::super::ModelApi::Responses,
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
                tool_calls: vec![super::super::ToolCallRequest::function(
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
        let tools = vec![ToolSpec {
            kind: "function",
            function: super::super::FunctionSpec {
                name: "add".into(),
                description: None,
                parameters: super::super::ToolSchema::new(&json!({"type": "object"})),
            },
        }];
        assert_eq!(
            request(&settings, &messages, &tools, Some("add")),
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
        );
    }
}
