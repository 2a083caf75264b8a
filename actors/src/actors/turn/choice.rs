//! What a turn offers the model: every tool, or a profile's (protocol §7.2 `tool_choice`,
//! `[[tool_choices]]`), and the tool its first call must call.

use std::sync::Arc;

use crate::config::{ClientToolSpec, ToolChoiceMode};
use crate::mcp::{OfferedTool, OfferedTools};
use crate::model::{FunctionSpec, ToolSpec};

/// The composer's tool choice, as the turn acts on it.
#[derive(Clone, Debug)]
pub(super) enum TurnToolChoice {
    /// An entry of the tool menu (`[[tool_choices]]`).
    Menu(ToolChoiceMode),
    /// An id sent while no tool menu is configured: it forces the one offered tool it names
    /// (`<server>__<tool>`, the tool's bare name when unique, or a client tool), if any.
    Named(String),
}

/// The tools of a turn, as the model sees them.
pub(super) struct Offer {
    pub tools: Arc<[OfferedTool]>,
    pub specs: Arc<[ToolSpec]>,
    /// The name the first model call must call (then the model goes on by itself).
    pub forced: Option<String>,
}

/// The MCP `tools` and client tools the turn's `choice` lets it offer (a profile offers only
/// its own, named `<server>__<tool>` or as client tools), and the forced one's name.
pub(super) fn offer(
    choice: Option<&TurnToolChoice>,
    offered: OfferedTools,
    client_tools: &[ClientToolSpec],
    thread_id: &crate::ids::ThreadId,
) -> Offer {
    let menu = match choice {
        Some(TurnToolChoice::Menu(mode)) => Some(mode),
        Some(TurnToolChoice::Named(_)) | None => None,
    };
    let named = match choice {
        Some(TurnToolChoice::Named(id)) => named_tool(id, &offered.tools, client_tools),
        _ => None,
    };
    // The common case: every MCP tool, no client tools: the shared specs as they are.
    if menu.is_none() && client_tools.is_empty() {
        return Offer {
            tools: offered.tools,
            specs: offered.specs,
            forced: named,
        };
    }
    let mut tools: Vec<OfferedTool> = offered.tools.to_vec();
    let mut client_tools: Vec<&ClientToolSpec> = client_tools.iter().collect();
    if let Some(ToolChoiceMode::Profile {
        tools: Some(allowed),
        ..
    }) = menu
    {
        tools.retain(|t| allowed.contains(&t.configured_name()));
        client_tools.retain(|c| allowed.contains(&c.name));
    }
    let mut specs: Vec<ToolSpec> = tools.iter().map(|t| t.spec.clone()).collect();
    specs.extend(client_tools.iter().map(|c| {
        ToolSpec::new(FunctionSpec {
            name: c.name.clone(),
            description: c.description.clone(),
            parameters: c.parameters.clone(),
        })
    }));
    let forced = match menu {
        // A name without a server is a hosted tool's type (the configuration checked it):
        // the model offers it or drops the choice.
        Some(ToolChoiceMode::Force(name))
            if !name.contains("__") && !client_tools.iter().any(|c| &c.name == name) =>
        {
            Some(name.clone())
        }
        Some(ToolChoiceMode::Force(name)) => {
            let exposed = forced_by_menu(name, &tools, &client_tools);
            if exposed.is_none() {
                tracing::warn!(%thread_id, tool = %name, "the forced tool is not offered by its server; the model chooses");
            }
            exposed
        }
        _ => named,
    };
    Offer {
        tools: tools.into(),
        specs: specs.into(),
        forced,
    }
}

/// The exposed name of the tool a menu entry forces (`<server>__<tool>` or a client tool).
fn forced_by_menu(
    name: &str,
    tools: &[OfferedTool],
    client_tools: &[&ClientToolSpec],
) -> Option<String> {
    tools
        .iter()
        .find(|t| t.configured_name() == name)
        .map(|t| t.exposed_name.clone())
        .or_else(|| {
            client_tools
                .iter()
                .find(|c| c.name == name)
                .map(|c| c.name.clone())
        })
}

/// The exposed name of the one offered tool `id` names: `<server>__<tool>`, the name the
/// model sees, the tool's bare name, or a client tool's name. None when it names no tool or
/// more than one.
fn named_tool(id: &str, tools: &[OfferedTool], client_tools: &[ClientToolSpec]) -> Option<String> {
    let mut matches: Vec<&str> = tools
        .iter()
        .filter(|t| t.configured_name() == id || t.exposed_name == id || t.tool_name == id)
        .map(|t| t.exposed_name.as_str())
        .chain(
            client_tools
                .iter()
                .filter(|c| c.name == id)
                .map(|c| c.name.as_str()),
        )
        .collect();
    matches.dedup();
    match matches.as_slice() {
        [one] => Some(one.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::named_tool;
    use crate::config::ClientToolSpec;
    use crate::mcp::OfferedTool;
    use crate::model::{FunctionSpec, ToolSchema, ToolSpec};

    fn tool(server: &str, name: &str, exposed: &str) -> OfferedTool {
        OfferedTool {
            exposed_name: exposed.into(),
            server: server.into(),
            tool_name: name.into(),
            spec: ToolSpec::new(FunctionSpec {
                name: exposed.into(),
                description: None,
                parameters: ToolSchema::new(&serde_json::json!({})),
            }),
        }
    }

    #[test]
    fn an_id_forces_the_one_tool_it_names() {
        let tools = [
            tool("tasks", "add_task", "add_task"),
            tool("a", "x", "a__x"),
        ];
        assert_eq!(
            named_tool("add_task", &tools, &[]).as_deref(),
            Some("add_task")
        );
        assert_eq!(
            named_tool("tasks__add_task", &tools, &[]).as_deref(),
            Some("add_task")
        );
        assert_eq!(named_tool("x", &tools, &[]).as_deref(), Some("a__x"));
        assert_eq!(named_tool("nothing", &tools, &[]), None);
    }

    #[test]
    fn a_bare_name_of_two_servers_forces_nothing() {
        let tools = [tool("a", "x", "a__x"), tool("b", "x", "b__x")];
        assert_eq!(named_tool("x", &tools, &[]), None);
        assert_eq!(named_tool("b__x", &tools, &[]).as_deref(), Some("b__x"));
    }

    #[test]
    fn a_client_tool_can_be_named() {
        let client = [ClientToolSpec {
            name: "pick_color".into(),
            description: None,
            parameters: ToolSchema::new(&serde_json::json!({})),
        }];
        assert_eq!(
            named_tool("pick_color", &[], &client).as_deref(),
            Some("pick_color")
        );
    }
}
