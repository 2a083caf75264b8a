//! What a session offers the model: every listed tool of every server, named uniquely
//! across servers, with its spec; built once per set of tool lists and shared by the turns.

use std::collections::HashMap;
use std::sync::Arc;

use super::catalog::ToolList;
use super::McpServerConfig;
use crate::model::{FunctionSpec, ToolSpec};

/// A tool offered to the model, and where it lives.
#[derive(Clone, Debug)]
pub struct OfferedTool {
    /// The function name the model sees (unique across servers).
    pub exposed_name: String,
    pub server: String,
    pub tool_name: String,
    pub spec: ToolSpec,
}

impl OfferedTool {
    /// How the configuration names it: `<mcp server>__<tool>` (whatever the model sees).
    pub fn configured_name(&self) -> String {
        format!("{}__{}", self.server, self.tool_name)
    }
}

/// The tools a turn may offer, and their specs for the model: built once per set of tool
/// lists and shared by the turns that offer them.
#[derive(Clone)]
pub struct OfferedTools {
    pub tools: Arc<[OfferedTool]>,
    pub specs: Arc<[ToolSpec]>,
}

/// Every listed tool of every server, named uniquely across servers (`server__` prefixed on
/// collisions).
pub(super) fn build_offer(servers: &[&McpServerConfig], lists: &[ToolList]) -> OfferedTools {
    {
        let lists: Vec<(&McpServerConfig, &ToolList)> =
            servers.iter().copied().zip(lists).collect();
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for (_, tools) in &lists {
            for tool in tools.iter() {
                *counts.entry(tool.name.as_str()).or_default() += 1;
            }
        }
        let all = lists
            .iter()
            .flat_map(|(server, tools)| tools.iter().map(move |tool| (*server, tool)));
        let tools: Arc<[OfferedTool]> = all
            .map(|(server, tool)| {
                let name = tool.name.clone();
                let exposed_name = if counts[name.as_str()] > 1 {
                    format!("{}__{name}", server.name)
                } else {
                    name.clone()
                };
                let server = server.name.clone();
                let spec = ToolSpec {
                    kind: "function",
                    function: FunctionSpec {
                        name: exposed_name.clone(),
                        description: tool.description.clone(),
                        parameters: tool.parameters.clone(),
                    },
                };
                OfferedTool {
                    exposed_name,
                    server,
                    tool_name: name,
                    spec,
                }
            })
            .collect();
        let specs = tools.iter().map(|t| t.spec.clone()).collect();
        OfferedTools { tools, specs }
    }
}
