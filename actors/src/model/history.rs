//! Thread items → the messages the model sees.

use super::wire::{ChatMessage, ContentPart, ToolCallRequest, UserContent};
use crate::protocol::{ItemBody, ThreadItem, ToolCallStatus, UserMessage, UserMessageContent};

/// Wrapper the reference uses for hidden context (protocol §6.11).
const HIDDEN_CONTEXT_PREFIX: &str = "Hidden context for the agent (not shown to the user):";

fn hidden(content: &str) -> ChatMessage {
    ChatMessage::User {
        content: format!("{HIDDEN_CONTEXT_PREFIX}\n<HiddenContext>\n{content}\n</HiddenContext>")
            .into(),
    }
}

/// How the official bridge shows the model a widget: `…(id: <item id>) was displayed to the
/// user:<compact JSON>`.
const WIDGET_PREFIX_START: &str = "The following graphical UI widget (id: ";
const WIDGET_PREFIX_END: &str = ") was displayed to the user:";

/// How the official bridge introduces the quoted text of the newest message.
const QUOTE_PREFIX: &str = "The user is referring to this in particular: \n";

/// How the official bridge introduces the @-mentioned entities of a message.
const TAGS_HEADER: &str = "# User-provided context for @-mentions\n- When referencing resolved entities, use their canonical names **without** '@'.\n- The '@' form appears only in user text and should not be echoed.";

/// A user message as the official bridge sends it: the text (tags as `@label`) and one part
/// per attachment (put in place just before the model call); then, for the newest message
/// only, its quoted text; then, when it mentions entities, one context message describing
/// them (deduplicated by their text, in order).
fn user_message(m: &UserMessage, is_last: bool) -> Vec<ChatMessage> {
    let text = m.plain_text();
    let content = if m.attachments.is_empty() {
        UserContent::Text(text)
    } else {
        let mut parts = vec![ContentPart::Text { text }];
        parts.extend(m.attachments.iter().cloned().map(ContentPart::Attachment));
        UserContent::Parts(parts)
    };
    let mut messages = vec![ChatMessage::User { content }];
    if let Some(quoted) = m.quoted_text.as_ref().filter(|_| is_last) {
        messages.push(ChatMessage::User {
            content: format!("{QUOTE_PREFIX}{quoted}").into(),
        });
    }
    let mut seen: Vec<&str> = Vec::new();
    let mut tag_parts = Vec::new();
    for part in &m.content {
        if let UserMessageContent::InputTag {
            id,
            text,
            data,
            group,
            ..
        } = part
        {
            if seen.contains(&text.as_str()) {
                continue;
            }
            seen.push(text);
            let mut entity = serde_json::Map::new();
            entity.insert("id".into(), id.clone().into());
            entity.insert("text".into(), text.clone().into());
            if let Some(group) = group {
                entity.insert("group".into(), group.clone().into());
            }
            entity.insert("data".into(), serde_json::Value::Object(data.clone()));
            tag_parts.push(ContentPart::Text {
                text: format!("@{text}: {}", serde_json::Value::Object(entity)),
            });
        }
    }
    if !tag_parts.is_empty() {
        let mut parts = vec![ContentPart::Text {
            text: TAGS_HEADER.to_string(),
        }];
        parts.extend(tag_parts);
        messages.push(ChatMessage::User {
            content: UserContent::Parts(parts),
        });
    }
    messages
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
    for (index, item) in items.iter().enumerate() {
        match &item.body {
            ItemBody::UserMessage(m) => {
                let is_last = index + 1 == items.len();
                messages.extend(user_message(m, is_last));
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
            // As the official bridge's `widget_to_input`.
            ItemBody::Widget(w) => messages.push(ChatMessage::User {
                content: format!(
                    "{WIDGET_PREFIX_START}{}{WIDGET_PREFIX_END}{}",
                    item.id, w.widget
                )
                .into(),
            }),
            ItemBody::HiddenContext(h) => match &h.content {
                serde_json::Value::String(text) => messages.push(hidden(text)),
                other => messages.push(hidden(&other.to_string())),
            },
            ItemBody::SdkHiddenContext(h) => messages.push(hidden(&h.content)),
            // As the official bridge's `structured_input_to_input`.
            ItemBody::StructuredInput(s) => messages.push(ChatMessage::User {
                content: crate::protocol::structured_input::model_text(s).into(),
            }),
            ItemBody::ClientToolCall(_)
            | ItemBody::Workflow(_)
            | ItemBody::Task(_)
            | ItemBody::EndOfTurn(_) => {}
        }
    }
    messages
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::protocol::Timestamp;

    fn user(id: &str, body: serde_json::Value) -> ThreadItem {
        let mut item = json!({
            "id": id, "thread_id": "thr_1", "created_at": "2025-01-01T00:00:00",
            "type": "user_message", "attachments": [], "inference_options": {}
        });
        item.as_object_mut()
            .unwrap()
            .extend(body.as_object().unwrap().clone());
        let mut parsed: ThreadItem = serde_json::from_value(item).unwrap();
        parsed.created_at = Timestamp::now();
        parsed
    }

    #[test]
    fn quotes_go_with_the_newest_message_only_and_tags_as_one_context_message() {
        let tag = |id: &str, text: &str| json!({"type": "input_tag", "id": id, "text": text, "data": {"k": id}, "group": "Docs", "interactive": false});
        let items = vec![
            user(
                "m1",
                json!({"content": [{"type": "input_text", "text": "old"}], "quoted_text": "earlier quote"}),
            ),
            user(
                "m2",
                json!({"content": [
                {"type": "input_text", "text": "compare "}, tag("d1", "Plan"),
                {"type": "input_text", "text": " and "}, tag("d1", "Plan"), tag("d2", "Budget")
            ], "quoted_text": "this part"}),
            ),
        ];
        let sent = serde_json::to_value(history_messages("", &items)).unwrap();
        let header = TAGS_HEADER;
        assert_eq!(
            sent,
            json!([
                {"role": "user", "content": "old"},
                {"role": "user", "content": "compare @Plan and @Plan@Budget"},
                {"role": "user", "content": "The user is referring to this in particular: \nthis part"},
                {"role": "user", "content": [
                    {"type": "text", "text": header},
                    {"type": "text", "text": "@Plan: {\"id\":\"d1\",\"text\":\"Plan\",\"group\":\"Docs\",\"data\":{\"k\":\"d1\"}}"},
                    {"type": "text", "text": "@Budget: {\"id\":\"d2\",\"text\":\"Budget\",\"group\":\"Docs\",\"data\":{\"k\":\"d2\"}}"}
                ]}
            ])
        );
    }

    #[test]
    fn widgets_are_shown_to_the_model_as_the_official_bridge_does() {
        let widget: ThreadItem = serde_json::from_value(json!({
            "id": "msg_w", "thread_id": "thr_1", "created_at": "2025-01-01T00:00:00",
            "type": "widget", "widget": {"type": "Card", "children": [{"type": "Text", "value": "hi"}]},
            "copy_text": "hi"
        }))
        .unwrap();
        let sent = serde_json::to_value(history_messages("", &[widget])).unwrap();
        assert_eq!(
            sent,
            json!([{"role": "user", "content": "The following graphical UI widget (id: msg_w) was displayed to the user:{\"type\":\"Card\",\"children\":[{\"type\":\"Text\",\"value\":\"hi\"}]}"}])
        );
    }
}
