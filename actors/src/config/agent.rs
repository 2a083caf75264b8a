//! The `[agent]` and `[mcp]` sections: the tool loop's bound, the client tools offered to the
//! model, and the MCP servers whose tools it may call.

use std::num::{NonZeroU32, NonZeroU64};
use std::time::Duration;

use serde::Deserialize;

use super::{
    AgentSettings, ClientToolSpec, McpServerConfig, ToolDisplay, WidgetMode, ASK_USER_TOOL,
};

#[derive(Deserialize)]
pub(super) struct AgentSection {
    max_model_calls: NonZeroU32,
    /// The old name of `max_model_calls` (it counts model calls, not turns); still accepted.
    max_turns: Option<NonZeroU32>,
    tool_display: ToolDisplay,
    #[serde(default)]
    client_tools: Vec<ClientToolSection>,
    ask_user: bool,
    ask_timeout_secs: NonZeroU64,
}

#[derive(Deserialize)]
struct ClientToolSection {
    name: String,
    description: Option<String>,
    /// A JSON schema object, as text.
    parameters: Option<String>,
}

#[derive(Default, Deserialize)]
pub(super) struct McpSection {
    #[serde(default)]
    servers: Vec<McpServerSection>,
}

#[derive(Deserialize)]
struct McpServerSection {
    name: String,
    url: String,
    #[serde(default = "default_mcp_timeout")]
    timeout_secs: NonZeroU64,
    #[serde(default)]
    forward_user_token: bool,
    #[serde(default)]
    headers: std::collections::BTreeMap<String, String>,
    #[serde(default = "default_tools_cache")]
    tools_cache_secs: u64,
    #[serde(default)]
    widgets: WidgetMode,
}

fn default_mcp_timeout() -> NonZeroU64 {
    NonZeroU64::new(30).expect("non-zero")
}

fn default_tools_cache() -> u64 {
    60
}

/// The tool settings; `None` when a client tool or an MCP server is refused (every problem
/// pushed, each one line).
pub(super) fn agent_settings(
    raw: AgentSection,
    mcp: McpSection,
    problems: &mut Vec<String>,
    warnings: &mut Vec<String>,
) -> Option<AgentSettings> {
    let before = problems.len();
    let max_model_calls = max_model_calls(&raw, warnings);
    let client_tools: Vec<ClientToolSpec> = raw
        .client_tools
        .into_iter()
        .filter_map(|tool| client_tool(tool).map_err(|p| problems.push(p)).ok())
        .collect();
    if raw.ask_user && client_tools.iter().any(|t| t.name == ASK_USER_TOOL) {
        problems.push(format!(
            "agent.client_tools {ASK_USER_TOOL}: the name is taken by agent.ask_user"
        ));
    }
    let mut mcp_servers: Vec<McpServerConfig> = Vec::new();
    for server in mcp.servers {
        match mcp_server(server, &mcp_servers) {
            Ok(server) => mcp_servers.push(server),
            Err(problem) => problems.push(problem),
        }
    }
    (problems.len() == before).then_some(AgentSettings {
        max_model_calls: max_model_calls.get(),
        tool_display: raw.tool_display,
        client_tools,
        mcp_servers,
        ask_user: raw.ask_user,
        ask_timeout: Duration::from_secs(raw.ask_timeout_secs.get()),
    })
}

/// `agent.max_model_calls`, or its old name `agent.max_turns` when set (with a warning).
fn max_model_calls(raw: &AgentSection, warnings: &mut Vec<String>) -> NonZeroU32 {
    match raw.max_turns {
        Some(old) => {
            warnings.push(
                "agent.max_turns is the old name of agent.max_model_calls (it counts model calls); it is still used"
                    .into(),
            );
            old
        }
        None => raw.max_model_calls,
    }
}

/// One `[[agent.client_tools]]`: a name model APIs accept, parameters a JSON schema object
/// (none: a tool without arguments).
fn client_tool(tool: ClientToolSection) -> Result<ClientToolSpec, String> {
    if !valid_name(&tool.name) {
        return Err(format!(
            "agent.client_tools name {:?} must match ^[A-Za-z0-9_-]{{1,64}}$",
            tool.name
        ));
    }
    let parameters = match tool.parameters.as_deref() {
        None => serde_json::json!({ "type": "object", "properties": {} }),
        Some(text) => match serde_json::from_str::<serde_json::Value>(text) {
            Ok(value @ serde_json::Value::Object(_)) => value,
            _ => {
                return Err(format!(
                    "agent.client_tools {}: parameters must be a JSON schema object",
                    tool.name
                ))
            }
        },
    };
    Ok(ClientToolSpec {
        name: tool.name,
        description: tool.description,
        parameters: crate::tool_schema::ToolSchema::new(&parameters),
    })
}

/// One `[[mcp.servers]]`: a name unique among the servers `accepted` before it, an http(s)
/// URL.
fn mcp_server(
    server: McpServerSection,
    accepted: &[McpServerConfig],
) -> Result<McpServerConfig, String> {
    if !valid_name(&server.name) || accepted.iter().any(|s| s.name == server.name) {
        return Err(format!(
            "mcp.servers name {:?} must be unique and match ^[A-Za-z0-9_-]{{1,64}}$",
            server.name
        ));
    }
    match url::Url::parse(&server.url) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => {}
        _ => {
            return Err(format!(
                "mcp.servers {}: url is not an http(s) URL",
                server.name
            ))
        }
    }
    Ok(McpServerConfig {
        name: server.name,
        url: server.url,
        timeout: Duration::from_secs(server.timeout_secs.get()),
        forward_user_token: server.forward_user_token,
        headers: server.headers.into_iter().collect(),
        tools_cache: Duration::from_secs(server.tools_cache_secs),
        widgets: server.widgets,
    })
}

/// Tool, client tool and MCP server names: what model APIs accept as function names.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool(name: &str, parameters: Option<&str>) -> ClientToolSection {
        ClientToolSection {
            name: name.into(),
            description: None,
            parameters: parameters.map(str::to_string),
        }
    }

    fn server(name: &str, url: &str) -> McpServerSection {
        serde_json::from_value(serde_json::json!({ "name": name, "url": url })).unwrap()
    }

    #[test]
    fn a_client_tool_needs_a_function_name_and_an_object_schema() {
        let plain = client_tool(tool("add_task", None)).expect("valid");
        assert_eq!(
            serde_json::to_value(&plain.parameters).unwrap(),
            serde_json::json!({ "type": "object", "properties": {} })
        );
        assert!(client_tool(tool("add", Some(r#"{"type":"object"}"#))).is_ok());
        assert_eq!(
            client_tool(tool("bad name", None)).err().unwrap(),
            "agent.client_tools name \"bad name\" must match ^[A-Za-z0-9_-]{1,64}$"
        );
        for parameters in ["[1]", "not json", "\"object\""] {
            assert_eq!(
                client_tool(tool("add", Some(parameters))).err().unwrap(),
                "agent.client_tools add: parameters must be a JSON schema object"
            );
        }
    }

    #[test]
    fn an_mcp_server_needs_a_unique_name_and_an_http_url() {
        let first = mcp_server(server("tasks", "http://127.0.0.1:1/mcp"), &[]).expect("valid");
        assert_eq!(first.timeout, Duration::from_secs(30));
        assert_eq!(first.tools_cache, Duration::from_secs(60));
        let accepted = [first];
        assert_eq!(
            mcp_server(server("tasks", "http://127.0.0.1:2/mcp"), &accepted)
                .err()
                .unwrap(),
            "mcp.servers name \"tasks\" must be unique and match ^[A-Za-z0-9_-]{1,64}$"
        );
        assert!(mcp_server(server("other", "https://tools.example/mcp"), &accepted).is_ok());
        for url in ["ftp://x/mcp", "not a url", "file:///tmp/mcp"] {
            assert_eq!(
                mcp_server(server("other", url), &accepted).err().unwrap(),
                "mcp.servers other: url is not an http(s) URL",
                "{url}"
            );
        }
    }

    #[test]
    fn the_old_max_turns_wins_with_a_warning() {
        let section = |json| serde_json::from_value::<AgentSection>(json).unwrap();
        let mut warnings = Vec::new();
        let new = section(
            serde_json::json!({ "max_model_calls": 8, "tool_display": "hidden", "ask_user": false, "ask_timeout_secs": 600 }),
        );
        assert_eq!(max_model_calls(&new, &mut warnings).get(), 8);
        assert!(warnings.is_empty());
        let old = section(
            serde_json::json!({ "max_model_calls": 8, "max_turns": 3, "tool_display": "hidden", "ask_user": false, "ask_timeout_secs": 600 }),
        );
        assert_eq!(max_model_calls(&old, &mut warnings).get(), 3);
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].starts_with("agent.max_turns is the old name"));
    }

    #[test]
    fn ask_user_takes_its_tool_name_and_its_timeout() {
        let section = |ask_user: bool| {
            serde_json::from_value::<AgentSection>(serde_json::json!({
                "max_model_calls": 8, "tool_display": "hidden", "ask_user": ask_user,
                "ask_timeout_secs": 90,
                "client_tools": [{ "name": "ask_user" }]
            }))
            .unwrap()
        };
        let (mut problems, mut warnings) = (Vec::new(), Vec::new());
        let settings = agent_settings(
            section(false),
            McpSection::default(),
            &mut problems,
            &mut warnings,
        )
        .expect("a client tool may be called ask_user while agent.ask_user is off");
        assert_eq!(settings.ask_timeout, Duration::from_secs(90));
        assert!(agent_settings(
            section(true),
            McpSection::default(),
            &mut problems,
            &mut warnings
        )
        .is_none());
        assert_eq!(
            problems,
            ["agent.client_tools ask_user: the name is taken by agent.ask_user"]
        );
    }
}
