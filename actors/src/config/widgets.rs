//! Widgets and their actions: `[[widgets]]` (a `.widget` template per tool) and
//! `[[widget_actions]]` (an action type → the tool it calls), `specs/widgets.md`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;

use super::{McpServerConfig, SectionSource};
use crate::widgets::WidgetTemplate;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WidgetEntry {
    tool: String,
    template: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WidgetActionEntry {
    #[serde(rename = "type")]
    kind: String,
    tool: String,
    #[serde(default)]
    then: ActionThen,
}

/// What follows a widget action's tool call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionThen {
    /// The returned widget replaces the sender.
    #[default]
    Replace,
    /// A model turn answers (the sender stays).
    Respond,
    /// Both.
    Both,
}

impl ActionThen {
    pub fn replaces(self) -> bool {
        matches!(self, ActionThen::Replace | ActionThen::Both)
    }

    pub fn responds(self) -> bool {
        matches!(self, ActionThen::Respond | ActionThen::Both)
    }
}

/// A tool of a configured MCP server, named `<server>__<tool>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ConfiguredTool {
    pub server: String,
    pub tool: String,
}

impl std::fmt::Display for ConfiguredTool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}__{}", self.server, self.tool)
    }
}

/// One `[[widget_actions]]` entry.
#[derive(Clone, Debug)]
pub struct WidgetActionSpec {
    pub tool: ConfiguredTool,
    pub then: ActionThen,
}

/// `[[widgets]]` and `[[widget_actions]]`, checked and compiled.
#[derive(Clone, Debug, Default)]
pub struct WidgetSettings {
    /// `<server>__<tool>` → its template.
    pub templates: HashMap<ConfiguredTool, Arc<WidgetTemplate>>,
    /// Action type → the tool it calls.
    pub actions: HashMap<String, WidgetActionSpec>,
}

/// Splits `<server>__<tool>` where `server` is a configured MCP server.
fn configured_tool(
    key: &str,
    name: &str,
    servers: &[McpServerConfig],
    problems: &mut Vec<String>,
) -> Option<ConfiguredTool> {
    let found = servers.iter().find_map(|server| {
        let tool = name.strip_prefix(&server.name)?.strip_prefix("__")?;
        (!tool.is_empty()).then(|| ConfiguredTool {
            server: server.name.clone(),
            tool: tool.to_string(),
        })
    });
    if found.is_none() {
        problems.push(format!(
            "{key} {name:?} must be <mcp server>__<tool> with a server of [[mcp.servers]]"
        ));
    }
    found
}

pub(super) fn widget_settings(
    source: &impl SectionSource,
    servers: Option<&[McpServerConfig]>,
    problems: &mut Vec<String>,
) -> Option<WidgetSettings> {
    let widgets = source
        .list::<WidgetEntry>("widgets")
        .map_err(|p| problems.push(p))
        .ok();
    let actions = source
        .list::<WidgetActionEntry>("widget_actions")
        .map_err(|p| problems.push(p))
        .ok();
    let servers = servers?;
    let before = problems.len();
    let mut settings = WidgetSettings::default();
    let base = source.base_dir();
    for entry in widgets.iter().flatten() {
        let Some(tool) = configured_tool("widgets.tool", &entry.tool, servers, problems) else {
            continue;
        };
        let path = base.join(Path::new(&entry.template));
        match WidgetTemplate::from_file(&path) {
            Ok(template) => {
                if settings
                    .templates
                    .insert(tool, Arc::new(template))
                    .is_some()
                {
                    problems.push(format!("widgets.tool {:?} has two templates", entry.tool));
                }
            }
            Err(problem) => {
                problems.push(format!("widgets.template {}: {problem}", path.display()))
            }
        }
    }
    for entry in actions.iter().flatten() {
        let valid_type = !entry.kind.is_empty()
            && entry.kind.chars().count() <= 128
            && !entry.kind.chars().any(char::is_control);
        if !valid_type {
            problems.push(format!(
                "widget_actions.type {:?} must be 1 to 128 characters without control characters",
                entry.kind
            ));
            continue;
        }
        let Some(tool) = configured_tool("widget_actions.tool", &entry.tool, servers, problems)
        else {
            continue;
        };
        let spec = WidgetActionSpec {
            tool,
            then: entry.then,
        };
        if settings.actions.insert(entry.kind.clone(), spec).is_some() {
            problems.push(format!(
                "widget_actions.type {:?} is mapped twice",
                entry.kind
            ));
        }
    }
    (problems.len() == before && widgets.is_some() && actions.is_some()).then_some(settings)
}
