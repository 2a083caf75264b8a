//! What a turn offers the model: every tool, or a profile's (protocol §7.2 `tool_choice`,
//! `[[tool_choices]]`), and the tool its first call must call.

use std::sync::Arc;

use crate::config::{ClientToolSpec, ToolChoiceMode};
use crate::mcp::{OfferedTool, OfferedTools};
use crate::model::{FunctionSpec, ToolSpec};

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
    choice: Option<&ToolChoiceMode>,
    offered: OfferedTools,
    client_tools: &[ClientToolSpec],
    thread_id: &str,
) -> Offer {
    // The common case: every MCP tool, no client tools: the shared specs as they are.
    if choice.is_none() && client_tools.is_empty() {
        return Offer {
            tools: offered.tools,
            specs: offered.specs,
            forced: None,
        };
    }
    let mut tools: Vec<OfferedTool> = offered.tools.to_vec();
    let mut client_tools: Vec<&ClientToolSpec> = client_tools.iter().collect();
    if let Some(ToolChoiceMode::Profile {
        tools: Some(allowed),
        ..
    }) = choice
    {
        tools.retain(|t| allowed.contains(&t.configured_name()));
        client_tools.retain(|c| allowed.contains(&c.name));
    }
    let mut specs: Vec<ToolSpec> = tools.iter().map(|t| t.spec.clone()).collect();
    specs.extend(client_tools.iter().map(|c| ToolSpec {
        kind: "function",
        function: FunctionSpec {
            name: c.name.clone(),
            description: c.description.clone(),
            parameters: c.parameters.clone(),
        },
    }));
    let forced = match choice {
        Some(ToolChoiceMode::Force(name)) => {
            let exposed = tools
                .iter()
                .find(|t| &t.configured_name() == name)
                .map(|t| t.exposed_name.clone())
                .or_else(|| {
                    client_tools
                        .iter()
                        .find(|c| &c.name == name)
                        .map(|c| c.name.clone())
                });
            if exposed.is_none() {
                tracing::warn!(%thread_id, tool = %name, "the forced tool is not offered by its server; the model chooses");
            }
            exposed
        }
        _ => None,
    };
    Offer {
        tools: tools.into(),
        specs: specs.into(),
        forced,
    }
}
