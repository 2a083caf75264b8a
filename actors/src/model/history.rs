//! Thread items → the messages the model sees.

use super::wire::{ChatMessage, ContentPart, ToolCallRequest, UserContent};
use crate::protocol::{ItemBody, ThreadItem, ToolCallStatus};

/// Wrapper the reference uses for hidden context (protocol §6.11).
const HIDDEN_CONTEXT_PREFIX: &str = "Hidden context for the agent (not shown to the user):";

fn hidden(content: &str) -> ChatMessage {
    ChatMessage::User {
        content: format!("{HIDDEN_CONTEXT_PREFIX}\n<HiddenContext>\n{content}\n</HiddenContext>")
            .into(),
    }
}

/// The model input for a thread: the instructions, then the items in order. Pending client
/// tool calls are skipped; completed ones become a call + output pair (protocol §6.3).
pub fn history_messages(instructions: &str, items: &[ThreadItem]) -> Vec<ChatMessage> {
    let mut messages = Vec::with_capacity(items.len() + 1);
    if !instructions.is_empty() {
        messages.push(ChatMessage::System {
            content: instructions.to_string(),
        });
    }
    for item in items {
        match &item.body {
            ItemBody::UserMessage(m) => {
                let mut content = m.plain_text();
                if let Some(quoted) = &m.quoted_text {
                    content = format!("{content}\n\nQuoted text: {quoted}");
                }
                // As the official bridge: the text, then one part per attachment (their
                // content is put in place just before the model call).
                let content = if m.attachments.is_empty() {
                    UserContent::Text(content)
                } else {
                    let mut parts = vec![ContentPart::Text { text: content }];
                    parts.extend(m.attachments.iter().cloned().map(ContentPart::Attachment));
                    UserContent::Parts(parts)
                };
                messages.push(ChatMessage::User { content });
            }
            ItemBody::AssistantMessage(m) => messages.push(ChatMessage::Assistant {
                content: Some(m.text()),
                tool_calls: vec![],
            }),
            ItemBody::ClientToolCall(call) if call.status == ToolCallStatus::Completed => {
                messages.push(ChatMessage::Assistant {
                    content: None,
                    tool_calls: vec![ToolCallRequest::function(
                        call.call_id.clone(),
                        call.name.clone(),
                        call.arguments.to_string(),
                    )],
                });
                let output = call
                    .output
                    .as_ref()
                    .map(|o| o.to_string())
                    .unwrap_or_default();
                messages.push(ChatMessage::Tool {
                    tool_call_id: call.call_id.clone(),
                    content: output,
                });
            }
            ItemBody::HiddenContext(h) => match &h.content {
                serde_json::Value::String(text) => messages.push(hidden(text)),
                other => messages.push(hidden(&other.to_string())),
            },
            ItemBody::SdkHiddenContext(h) => messages.push(hidden(&h.content)),
            ItemBody::ClientToolCall(_)
            | ItemBody::Workflow(_)
            | ItemBody::Task(_)
            | ItemBody::EndOfTurn(_) => {}
        }
    }
    messages
}
