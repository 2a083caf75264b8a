//! One way to call a tool, shared by the model's tool rounds and by widget actions (streamed
//! and sync): the server's session opened with the caller's token on its transport, the
//! call with its progress routed to a sink, its latency and a failing server counted, and a
//! broken session forgotten so the next use opens it again.

use std::sync::Arc;
use std::time::Instant;

use serde_json::{Map, Value};

use crate::ids::{BearerToken, ThreadId};
use crate::mcp::{McpError, McpServerConfig, McpSessions, ProgressSink, ServerHealth, ToolResult};
use crate::metrics::METRICS;
use crate::trace;
use tracing::Instrument;

/// The tool a call goes to.
#[derive(Clone, Copy)]
pub(super) struct ToolTarget<'a> {
    pub server: &'a McpServerConfig,
    pub tool: &'a str,
}

/// Who calls: the thread (for the log) and where a failing server is reported.
#[derive(Clone, Copy)]
pub(super) struct Caller<'a> {
    pub thread_id: &'a ThreadId,
    pub health: &'a Arc<ServerHealth>,
}

/// Opens `server`'s session unless a live one with the caller's token exists; a failure is
/// logged and counted against the server.
pub(super) async fn open_session(
    mcp: &mut McpSessions,
    server: &McpServerConfig,
    token: Option<&BearerToken>,
    caller: Caller<'_>,
) -> Result<(), McpError> {
    let opened = mcp.ensure_open(server, token).await;
    if let Err(error) = &opened {
        server_failed(server, error, caller);
    }
    opened
}

/// Calls the tool (its session must be open); progress `_meta` go to `progress`. Tool errors,
/// bad arguments and timeouts are results; a transport failure is an `Err`, counted (then
/// [`forget_broken`] the session).
pub(super) async fn call_tool(
    mcp: &McpSessions,
    target: ToolTarget<'_>,
    arguments: Map<String, Value>,
    progress: Option<ProgressSink>,
    caller: Caller<'_>,
) -> Result<ToolResult, McpError> {
    let started = Instant::now();
    let server = target.server;
    let span = trace::tool_call_span(&server.name, &server.url, target.tool);
    let result = mcp
        .call(server, target.tool, arguments, progress)
        .instrument(span.clone())
        .await;
    match &result {
        Err(_) => trace::record_error(&span, "transport"),
        Ok(answer) if answer.output.failed() => trace::record_error(&span, "tool_error"),
        Ok(_) => {}
    }
    let server = target.server.name.as_str();
    METRICS
        .mcp_call_seconds
        .with_label_values(&[server])
        .observe(started.elapsed().as_secs_f64());
    tracing::debug!(%server, tool = %target.tool, elapsed = ?started.elapsed(), ok = result.is_ok(), "tool call");
    if let Err(error) = &result {
        server_failed(target.server, error, caller);
    }
    result
}

/// Forgets the session of a server whose call failed: the next use opens it again.
pub(super) fn forget_broken(mcp: &mut McpSessions, server: &McpServerConfig) {
    mcp.forget(&server.name);
}

/// The model's arguments (JSON text) as an object; anything else is a failed result the
/// model sees.
pub(super) fn model_arguments(text: &str) -> Result<Map<String, Value>, Box<ToolResult>> {
    let text = if text.trim().is_empty() { "{}" } else { text };
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(Box::new(ToolResult::failed(
            "the tool arguments are not a JSON object".into(),
        ))),
    }
}

/// Logged, counted, and the server probed (it may be down).
fn server_failed(server: &McpServerConfig, error: &McpError, caller: Caller<'_>) {
    tracing::warn!(thread_id = %caller.thread_id, %error, "tool server failed");
    METRICS
        .mcp_errors
        .with_label_values(&[server.name.as_str()])
        .inc();
    caller.health.report_failure(server);
}

#[cfg(test)]
mod tests {
    use super::model_arguments;
    use crate::mcp::ToolOutput;

    #[test]
    fn model_arguments_are_an_object_or_a_result_the_model_sees() {
        assert_eq!(model_arguments("").unwrap().len(), 0);
        assert_eq!(model_arguments(r#"{"a":1}"#).unwrap()["a"], 1);
        for bad in ["[1]", "nope", "3"] {
            let refused = model_arguments(bad).unwrap_err();
            assert!(matches!(refused.output, ToolOutput::Failed(_)), "{bad}");
        }
    }
}
