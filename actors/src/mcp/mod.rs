//! MCP tool servers over Streamable HTTP (rmcp). A thread actor owns one session per
//! configured server: opened on first use (a tool call, or listing tools that the shared
//! [`ToolCatalog`] does not hold), reused across turns, re-opened after a failure or when the
//! caller's token changed (the token is fixed per transport), closed when the actor retires. The caller's bearer token rides on the transport (`Authorization` header of every
//! request of the session) for servers configured to receive it; it never enters a prompt,
//! a tool argument or a log line. With traces on, a tool call's `traceparent` rides next to it
//! (`traced_client.rs`).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rmcp::model::{CallToolRequestParams, ContentBlock};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::ServiceExt;
use serde_json::{Map, Value};
use tokio::sync::mpsc;
use tracing::Instrument;

pub use crate::config::McpServerConfig;
pub(crate) use crate::ids::BearerToken;

mod catalog;
mod elicitation;
mod form;
mod health;
mod offer;
mod progress;
mod session_events;
mod traced_client;
pub use catalog::ToolCatalog;
use catalog::ToolList;
pub use elicitation::{ElicitAnswer, Elicitation, QuestionRoute, RouteGuard};
pub use form::{content_from_answers, form_from_schema};
pub use health::ServerHealth;
pub use offer::{OfferMemo, OfferedTool, OfferedTools};
use progress::call_with_progress;
use session_events::SessionEvents;
use traced_client::TracedClient;

/// Why a tool server could not be used (the turn ends with an in-band error).
#[derive(Debug, thiserror::Error)]
pub enum McpError {
    #[error("tool server {server} is unavailable: {reason}")]
    Unavailable { server: String, reason: String },
}

/// The result of one tool call, as the model will see it.
#[derive(Clone, Debug, PartialEq)]
pub enum ToolOutput {
    Ok(String),
    /// The tool failed (or timed out); the model is told and may recover.
    Failed(String),
}

impl ToolOutput {
    pub fn text(&self) -> &str {
        match self {
            ToolOutput::Ok(t) | ToolOutput::Failed(t) => t,
        }
    }

    pub fn failed(&self) -> bool {
        matches!(self, ToolOutput::Failed(_))
    }
}

/// A tool call's result: what the model sees, and what the interface may use (never the
/// model): the result's `_meta`, its structured content and its first text block.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolResult {
    pub output: ToolOutput,
    pub meta: Option<Map<String, Value>>,
    pub structured: Option<Value>,
    pub first_text: Option<String>,
}

impl ToolResult {
    /// The model named a tool nobody offered.
    pub fn unknown_tool(name: &str) -> Self {
        Self::failed(format!("there is no tool named {name}"))
    }

    pub(crate) fn failed(text: String) -> Self {
        ToolResult {
            output: ToolOutput::Failed(text),
            meta: None,
            structured: None,
            first_text: None,
        }
    }
}

/// Where the `_meta` of a tool's progress notifications go while it runs (streamed widgets).
pub type ProgressSink = mpsc::Sender<Map<String, Value>>;

struct Session {
    service: RunningService<RoleClient, SessionEvents>,
    events: SessionEvents,
    token: Option<BearerToken>,
    tools: Option<ToolList>,
}

/// The MCP sessions of one thread actor.
pub struct McpSessions {
    sessions: HashMap<String, Session>,
    catalog: Arc<ToolCatalog>,
    /// The tools last offered, and the lists they were built from (the same lists, by
    /// pointer, give the same offer).
    offered: Option<(Vec<ToolList>, OfferedTools)>,
    /// Where the sessions' elicitation requests go (`elicitation.rs`).
    questions: QuestionRoute,
}

impl McpSessions {
    pub fn new(catalog: Arc<ToolCatalog>) -> Self {
        McpSessions {
            sessions: HashMap::new(),
            catalog,
            offered: None,
            questions: QuestionRoute::default(),
        }
    }

    /// The sessions' elicitation requests go to `to` until the guard is dropped.
    pub fn route_questions(&self, to: mpsc::Sender<Elicitation>) -> RouteGuard {
        self.questions.route(to)
    }

    /// Tools of every server that answers, discovered (and cached per session) with
    /// `tools/list`; names are made unique across servers by prefixing `server__` on
    /// collisions. A server that is down, or fails here (it is then probed), is left out and
    /// named in [`Offered::missing`].
    pub async fn offered_tools(
        &mut self,
        servers: &[McpServerConfig],
        token: Option<&BearerToken>,
        health: &Arc<ServerHealth>,
    ) -> Offered {
        let mut answered = Vec::with_capacity(servers.len());
        let mut lists = Vec::with_capacity(servers.len());
        let mut missing = Vec::new();
        for server in servers {
            if health.is_down(&server.name) {
                missing.push(server.name.clone());
                continue;
            }
            let listing = crate::trace::tool_list_span(&server.name);
            match self.tools_of(server, token).instrument(listing).await {
                Ok(list) => {
                    answered.push(server);
                    lists.push(list);
                }
                Err(error) => {
                    tracing::warn!(%error, "a tool server's tools are left out of the turn");
                    crate::metrics::METRICS
                        .mcp_errors
                        .with_label_values(&[server.name.as_str()])
                        .inc();
                    health.report_failure(server);
                    missing.push(server.name.clone());
                }
            }
        }
        let tools = match &self.offered {
            Some((built_from, offered))
                if built_from.len() == lists.len()
                    && built_from
                        .iter()
                        .zip(&lists)
                        .all(|(a, b)| Arc::ptr_eq(a, b)) =>
            {
                offered.clone()
            }
            _ => {
                let offered = self.catalog.offers.offer(&answered, &lists);
                self.offered = Some((lists, offered.clone()));
                offered
            }
        };
        Offered { tools, missing }
    }
}

/// What a turn may offer: the tools of the servers that answered, and the servers left out.
pub struct Offered {
    pub tools: OfferedTools,
    pub missing: Vec<String>,
}

impl McpSessions {
    async fn tools_of(
        &mut self,
        server: &McpServerConfig,
        token: Option<&BearerToken>,
    ) -> Result<ToolList, McpError> {
        let wanted_token = forwarded(server, token);
        let key = self.catalog.key(&server.name, wanted_token.as_ref());
        if !self.has_live_session(server, &wanted_token) {
            if let Some(tools) = self.catalog.get(&key, server.tools_cache) {
                return Ok(tools);
            }
        }
        self.ensure_open(server, token).await?;
        let session = self.sessions.get_mut(&server.name).expect("just ensured");
        let changed = session.events.tools_changed.swap(false, Ordering::AcqRel);
        if session.tools.is_none() || changed {
            let listed =
                tokio::time::timeout(server.timeout, session.service.peer().list_all_tools()).await;
            match listed {
                Ok(Ok(tools)) => {
                    // Kept as the catalog keeps it: one copy shared by every caller that
                    // sees the same tools.
                    let tools = self
                        .catalog
                        .put(key, catalog::listed(&tools), server.tools_cache);
                    session.tools = Some(tools);
                }
                Ok(Err(e)) => {
                    self.sessions.remove(&server.name);
                    self.catalog.forget(&key);
                    return Err(unavailable(server, e.to_string()));
                }
                Err(_) => {
                    self.sessions.remove(&server.name);
                    self.catalog.forget(&key);
                    return Err(unavailable(server, "tools/list timed out".into()));
                }
            }
        }
        Ok(session.tools.clone().unwrap_or_else(|| Arc::from([])))
    }

    fn has_live_session(&self, server: &McpServerConfig, token: &Option<BearerToken>) -> bool {
        self.sessions
            .get(&server.name)
            .is_some_and(|s| !s.service.is_closed() && &s.token == token)
    }

    /// Opens the server's session unless a live one with the caller's token exists (before
    /// tool calls: the tools may have been offered from the catalog, without a session).
    pub async fn ensure_open(
        &mut self,
        server: &McpServerConfig,
        token: Option<&BearerToken>,
    ) -> Result<(), McpError> {
        let wanted_token = forwarded(server, token);
        if self.has_live_session(server, &wanted_token) {
            return Ok(());
        }
        if let Some(old) = self.sessions.remove(&server.name) {
            let _ = tokio::time::timeout(Duration::from_secs(2), old.service.cancel()).await;
        }
        match open(server, wanted_token.clone(), self.questions.clone()).await {
            Ok(session) => {
                self.sessions.insert(server.name.clone(), session);
                Ok(())
            }
            Err(error) => {
                let key = self.catalog.key(&server.name, wanted_token.as_ref());
                self.catalog.forget(&key);
                Err(error)
            }
        }
    }

    /// Calls a tool with `arguments`. Tool errors and timeouts are results the model sees; a
    /// transport failure is an `Err` (then `forget` the server so the next use re-opens it).
    /// With `progress`, the tool is sent a progress token and the `_meta` of its progress
    /// notifications go there.
    pub async fn call(
        &self,
        server: &McpServerConfig,
        tool: &str,
        arguments: Map<String, Value>,
        progress: Option<ProgressSink>,
    ) -> Result<ToolResult, McpError> {
        let Some(session) = self.sessions.get(&server.name) else {
            return Err(unavailable(server, "no session".into()));
        };
        let mut params = CallToolRequestParams::new(tool.to_string());
        params.arguments = Some(arguments);
        params.meta = traced_client::trace_meta();
        let peer = session.service.peer().clone();
        let answer = match progress {
            // The time a question to the user takes does not count.
            None => {
                self.questions
                    .within(server.timeout, peer.call_tool(params))
                    .await
            }
            Some(sink) => {
                let routes = session.events.progress.clone();
                let call = call_with_progress(peer, params, routes, sink);
                self.questions.within(server.timeout, call).await
            }
        };
        match answer {
            Err(_) => Ok(ToolResult::failed(format!(
                "the tool {tool} timed out after {} s",
                server.timeout.as_secs_f32()
            ))),
            Ok(Ok(result)) => {
                let text = result_text(&result.content, result.structured_content.as_ref());
                let first_text = result.content.iter().find_map(|block| match block {
                    ContentBlock::Text(text) => Some(text.text.clone()),
                    _ => None,
                });
                let output = if result.is_error == Some(true) {
                    ToolOutput::Failed(text)
                } else {
                    ToolOutput::Ok(text)
                };
                Ok(ToolResult {
                    output,
                    meta: result.meta.map(|meta| meta.0),
                    structured: result.structured_content,
                    first_text,
                })
            }
            Ok(Err(error)) if session.service.is_closed() => {
                Err(unavailable(server, error.to_string()))
            }
            Ok(Err(error)) => Ok(ToolResult::failed(format!(
                "the tool {tool} failed: {error}"
            ))),
        }
    }

    /// Drops a server's session (after a transport failure), and the tool list the catalog
    /// holds for it with this caller.
    pub fn forget(&mut self, server: &str) {
        if let Some(session) = self.sessions.remove(server) {
            let key = self.catalog.key(server, session.token.as_ref());
            self.catalog.forget(&key);
        }
    }

    /// Closes every session (politely, bounded in time).
    pub async fn close(self) {
        for (_, session) in self.sessions {
            let _ = tokio::time::timeout(Duration::from_secs(2), session.service.cancel()).await;
        }
    }
}

/// The token a server receives: the caller's, if it is configured to forward it.
fn forwarded(server: &McpServerConfig, token: Option<&BearerToken>) -> Option<BearerToken> {
    if server.forward_user_token {
        token.cloned()
    } else {
        None
    }
}

/// One text item is passed unchanged (as the Agents SDK does); otherwise the content list
/// (or the structured content) as JSON.
fn result_text(content: &[ContentBlock], structured: Option<&Value>) -> String {
    match content {
        [ContentBlock::Text(text)] => text.text.clone(),
        [] => structured.map(Value::to_string).unwrap_or_default(),
        many => serde_json::to_string(many).unwrap_or_default(),
    }
}

fn unavailable(server: &McpServerConfig, reason: String) -> McpError {
    McpError::Unavailable {
        server: server.name.clone(),
        reason,
    }
}

/// The HTTP client of every MCP session. rmcp builds one per session by default, and each
/// build sets up TLS anew (root certificates included): with a session per thread actor that
/// cost CPU on every session opened and hundreds of KiB per live session. Ours keeps rmcp's
/// choices: no idle pooling (a reused connection whose last body was not read to its end
/// stalls ~40 ms on delayed ACKs) and no redirects (the caller's token must not follow one).
fn session_http_client() -> reqwest::Client {
    static CLIENT: std::sync::LazyLock<reqwest::Client> = std::sync::LazyLock::new(|| {
        reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .redirect(reqwest::redirect::Policy::none())
            .tcp_nodelay(true)
            .build()
            .expect("the HTTP client for MCP sessions starts")
    });
    CLIENT.clone()
}

async fn open(
    server: &McpServerConfig,
    token: Option<BearerToken>,
    questions: QuestionRoute,
) -> Result<Session, McpError> {
    let mut config = StreamableHttpClientTransportConfig::with_uri(server.url.clone());
    if let Some(token) = &token {
        // rmcp adds the "Bearer " prefix itself.
        config = config.auth_header(token.expose().to_string());
    }
    if !server.headers.is_empty() {
        let mut headers = HashMap::new();
        for (name, value) in &server.headers {
            let name = http::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| unavailable(server, format!("invalid header name {name}")))?;
            let value = http::HeaderValue::from_str(value)
                .map_err(|_| unavailable(server, "invalid header value".into()))?;
            headers.insert(name, value);
        }
        config = config.custom_headers(headers);
    }
    let client = TracedClient(session_http_client());
    let transport = StreamableHttpClientTransport::with_client(client, config);
    let events = SessionEvents {
        questions,
        ..SessionEvents::default()
    };
    let serve = traced_client::detached(events.clone().serve(transport));
    let service = tokio::time::timeout(server.timeout, serve)
        .await
        .map_err(|_| unavailable(server, "connection timed out".into()))?
        .ok_or_else(|| unavailable(server, "the session's task failed".into()))?
        .map_err(|e| unavailable(server, e.to_string()))?;
    tracing::debug!(server = %server.name, "MCP session opened");
    Ok(Session {
        service,
        events,
        token,
        tools: None,
    })
}
