//! What a tool result shows besides its text: a widget (from `_meta["chatkit/widget"]`, a
//! configured template, or the result itself on a `widgets = "result"` server, in that
//! order), a client effect and a notice. None of it reaches the model.

use serde_json::{Map, Value};

use super::validate::{validated_root, WidgetError};
use crate::config::{ConfiguredTool, McpServerConfig, WidgetMode, WidgetSettings};
use crate::mcp::ToolResult;
use crate::metrics::METRICS;
use crate::protocol::events::NoticeLevel;
use crate::protocol::ThreadStreamEvent;

pub const META_WIDGET: &str = "chatkit/widget";
pub const META_COPY_TEXT: &str = "chatkit/copy_text";
pub const META_CLIENT_EFFECT: &str = "chatkit/client_effect";
pub const META_NOTICE: &str = "chatkit/notice";

/// A validated widget root and its copy text.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolWidget {
    pub widget: Value,
    pub copy_text: Option<String>,
}

/// What the interface gets from one tool result.
#[derive(Debug, Default)]
pub struct ToolExtras {
    pub widget: Option<ToolWidget>,
    /// `client_effect` and `notice` events, in that order (never stored).
    pub events: Vec<ThreadStreamEvent>,
}

/// The widget, effect and notice of `result`, a call of `tool` on `server`. A failed call
/// shows nothing. Widgets that do not validate are dropped with a warning and a metric.
pub fn tool_extras(
    result: &ToolResult,
    server: &McpServerConfig,
    tool: &str,
    settings: &WidgetSettings,
) -> ToolExtras {
    let mut extras = ToolExtras::default();
    if result.output.failed() {
        return extras;
    }
    let empty = Map::new();
    let meta = result.meta.as_ref().unwrap_or(&empty);
    let configured = ConfiguredTool {
        server: server.name.clone(),
        tool: tool.to_string(),
    };
    let found = if let Some(root) = meta.get(META_WIDGET) {
        Some(("meta", validated_root(root)))
    } else if let Some(template) = settings.templates.get(&configured) {
        Some((
            "template",
            template_data(result).and_then(|data| template.render(&data)),
        ))
    } else if server.widgets == WidgetMode::Result {
        Some((
            "result",
            result_root(result).and_then(|root| validated_root(&root)),
        ))
    } else {
        None
    };
    if let Some((source, checked)) = found {
        match checked {
            Ok(widget) => {
                METRICS.widgets.with_label_values(&[source, "shown"]).inc();
                let copy_text = meta
                    .get(META_COPY_TEXT)
                    .and_then(Value::as_str)
                    .map(str::to_string);
                extras.widget = Some(ToolWidget { widget, copy_text });
            }
            Err(error) => {
                METRICS
                    .widgets
                    .with_label_values(&[source, "rejected"])
                    .inc();
                tracing::warn!(tool = %configured, source, %error, "widget rejected");
            }
        }
    }
    if let Some(effect) = meta.get(META_CLIENT_EFFECT) {
        match client_effect(effect) {
            Some(event) => extras.events.push(event),
            None => {
                tracing::warn!(tool = %configured, "client effect ignored: not {{name, data?}}")
            }
        }
    }
    if let Some(notice) = meta.get(META_NOTICE) {
        match notice_event(notice) {
            Some(event) => extras.events.push(event),
            None => {
                tracing::warn!(tool = %configured, "notice ignored: not {{level, message, title?}}")
            }
        }
    }
    extras
}

/// The widget state a progress notification's `_meta` carries, if valid (else counted).
pub fn progress_widget(meta: &Map<String, Value>) -> Option<Value> {
    let root = meta.get(META_WIDGET)?;
    match validated_root(root) {
        Ok(widget) => Some(widget),
        Err(error) => {
            METRICS
                .widgets
                .with_label_values(&["progress", "rejected"])
                .inc();
            tracing::warn!(%error, "widget update rejected");
            None
        }
    }
}

/// A template's data: the structured content, or the first text block as a JSON object.
fn template_data(result: &ToolResult) -> Result<Map<String, Value>, WidgetError> {
    match &result.structured {
        Some(Value::Object(map)) => return Ok(map.clone()),
        Some(_) => {
            return Err(WidgetError::Template(
                "the structured content is not an object".into(),
            ))
        }
        None => {}
    }
    match result
        .first_text
        .as_deref()
        .map(serde_json::from_str::<Value>)
    {
        Some(Ok(Value::Object(map))) => Ok(map),
        _ => Err(WidgetError::Template(
            "the result has no JSON object to render".into(),
        )),
    }
}

/// The result of a `widgets = "result"` tool: its structured content or first text block.
fn result_root(result: &ToolResult) -> Result<Value, WidgetError> {
    if let Some(root) = &result.structured {
        return Ok(root.clone());
    }
    result
        .first_text
        .as_deref()
        .and_then(|text| serde_json::from_str(text).ok())
        .ok_or(WidgetError::BadRoot)
}

fn client_effect(value: &Value) -> Option<ThreadStreamEvent> {
    let name = value.get("name")?.as_str()?;
    if name.is_empty() {
        return None;
    }
    let data = match value.get("data") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(map)) => map.clone(),
        Some(_) => return None,
    };
    Some(ThreadStreamEvent::ClientEffect {
        name: name.to_string(),
        data,
    })
}

fn notice_event(value: &Value) -> Option<ThreadStreamEvent> {
    let level: NoticeLevel = serde_json::from_value(value.get("level")?.clone()).ok()?;
    let message = value.get("message")?.as_str()?.to_string();
    let title = match value.get("title") {
        None | Some(Value::Null) => None,
        Some(Value::String(title)) => Some(title.clone()),
        Some(_) => return None,
    };
    Some(ThreadStreamEvent::Notice {
        level,
        message,
        title,
    })
}
