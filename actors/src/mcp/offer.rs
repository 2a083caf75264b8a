//! What a session offers the model: every listed tool of every server, named uniquely
//! across servers, with its spec; built once per set of tool lists and shared by the turns.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

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

/// The offer built last in this process, shared by every thread actor: most threads are
/// offered the same lists (the catalog keeps one copy of equal lists), so a new thread's
/// first turn reuses it instead of building its own (each offer copies every tool's name,
/// description and spec: ≈ 6% of the server's CPU when every turn started a thread).
#[derive(Default)]
pub struct OfferMemo {
    last: Mutex<Option<BuiltOffer>>,
}

struct BuiltOffer {
    servers: Vec<String>,
    lists: Vec<ToolList>,
    offered: OfferedTools,
}

impl BuiltOffer {
    /// Built from these servers' lists (the same lists by pointer give the same offer).
    fn is_for(&self, servers: &[&McpServerConfig], lists: &[ToolList]) -> bool {
        self.servers.len() == servers.len()
            && self.servers.iter().zip(servers).all(|(a, b)| *a == b.name)
            && self.lists.len() == lists.len()
            && self.lists.iter().zip(lists).all(|(a, b)| Arc::ptr_eq(a, b))
    }
}

impl OfferMemo {
    /// The offer of `servers`' `lists`: the last one built, when it was built from them.
    pub(super) fn offer(&self, servers: &[&McpServerConfig], lists: &[ToolList]) -> OfferedTools {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(built) = last.as_ref().filter(|b| b.is_for(servers, lists)) {
            return built.offered.clone();
        }
        let offered = build_offer(servers, lists);
        *last = Some(BuiltOffer {
            servers: servers.iter().map(|s| s.name.clone()).collect(),
            lists: lists.to_vec(),
            offered: offered.clone(),
        });
        offered
    }
}

/// Every listed tool of every server, named uniquely across servers (`server__` prefixed on
/// collisions).
fn build_offer(servers: &[&McpServerConfig], lists: &[ToolList]) -> OfferedTools {
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
                let spec = ToolSpec::new(FunctionSpec {
                    name: exposed_name.clone(),
                    description: tool.description.clone(),
                    parameters: tool.parameters.clone(),
                });
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::WidgetMode;
    use crate::mcp::catalog::ListedTool;
    use crate::tool_schema::ToolSchema;

    fn server(name: &str) -> McpServerConfig {
        McpServerConfig {
            name: name.into(),
            url: "http://127.0.0.1:1/mcp".into(),
            timeout: Duration::from_secs(1),
            forward_user_token: false,
            headers: Vec::new(),
            tools_cache: Duration::from_secs(60),
            widgets: WidgetMode::Meta,
        }
    }

    fn list(names: &[&str]) -> ToolList {
        names
            .iter()
            .map(|name| ListedTool {
                name: name.to_string(),
                description: None,
                parameters: ToolSchema::new(&serde_json::json!({"type": "object"})),
            })
            .collect()
    }

    #[test]
    fn the_same_lists_of_the_same_servers_share_one_offer_and_others_get_their_own() {
        let memo = OfferMemo::default();
        let (a, b) = (server("a"), server("b"));
        let (tasks, notes) = (list(&["add", "done"]), list(&["add"]));
        let first = memo.offer(&[&a, &b], &[tasks.clone(), notes.clone()]);
        let again = memo.offer(&[&a, &b], &[tasks.clone(), notes.clone()]);
        assert!(Arc::ptr_eq(&first.tools, &again.tools), "built once");
        let names: Vec<_> = first.tools.iter().map(|t| &t.exposed_name).collect();
        assert_eq!(names, ["a__add", "done", "b__add"], "collisions prefixed");

        // An equal list that is another copy, or other servers' names: built anew.
        let copy = memo.offer(&[&a, &b], &[list(&["add", "done"]), notes.clone()]);
        assert!(!Arc::ptr_eq(&first.tools, &copy.tools));
        let renamed = memo.offer(&[&a, &server("c")], &[tasks.clone(), notes.clone()]);
        assert_eq!(renamed.tools[2].exposed_name, "c__add");
        let one = memo.offer(&[&a], &[tasks]);
        assert_eq!(one.tools.len(), 2);
        assert_eq!(one.specs[0].function().name, "add", "no collision left");
    }
}
