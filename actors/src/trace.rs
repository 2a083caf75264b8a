//! Traces: the engine's `tracing` spans, and the context that makes them one trace per request
//! though its work runs in other actors and tasks. The engine knows nothing of OpenTelemetry:
//! the edge turns these spans into OTel spans (`src/telemetry/`), and installs the one thing
//! the engine needs from it, the W3C `traceparent` of a span, for the requests it makes to the
//! model and to tool servers ([`install`]).
//!
//! The spans are at `DEBUG` level: with traces off and the log at `info`, none is created.
//! Their fields follow the OpenTelemetry semantic conventions (`otel.name`, `otel.kind`,
//! `gen_ai.*`, `db.*`); a token or key is never one of them, and prompt or answer text only
//! with `telemetry.capture_content`.

use std::sync::OnceLock;

use tracing::field::Empty;
use tracing::Span;

use crate::ids::ThreadId;

/// What the edge gives the engine when traces are exported.
pub struct TraceExport {
    /// The W3C `traceparent` header value of a span (`None` when it is not recorded).
    pub traceparent: fn(&Span) -> Option<String>,
    /// Prompt and answer text go on model-call spans (`telemetry.capture_content`).
    pub capture_content: bool,
}

static EXPORT: OnceLock<TraceExport> = OnceLock::new();

/// Called once at start-up by the edge when traces are exported; later calls are ignored.
pub fn install(export: TraceExport) {
    let _ = EXPORT.set(export);
}

/// The `traceparent` that continues `span`'s trace in a request we send, if traces are on.
pub(crate) fn traceparent(span: &Span) -> Option<String> {
    let export = EXPORT.get()?;
    if span.is_disabled() {
        return None;
    }
    (export.traceparent)(span)
}

/// Whether prompt and answer text may go on spans.
pub(crate) fn capture_content() -> bool {
    EXPORT.get().is_some_and(|export| export.capture_content)
}

/// The span of the request a message works for. It travels in the messages between actors
/// (as the request's `Deadline` does), so that what another actor or task does for the
/// request is a descendant of it.
#[derive(Clone, Debug)]
pub struct TraceContext(Span);

impl TraceContext {
    /// The span the caller runs in.
    pub fn current() -> Self {
        TraceContext(Span::current())
    }

    /// No request: what a span made under it starts a trace of its own.
    pub fn none() -> Self {
        TraceContext(Span::none())
    }

    pub fn span(&self) -> &Span {
        &self.0
    }
}

impl Default for TraceContext {
    fn default() -> Self {
        TraceContext::none()
    }
}

/// A turn on its thread's actor: the agent's work for one request (GenAI `invoke_agent`).
/// Its outcome is recorded by [`record_turn_outcome`].
pub(crate) fn turn_span(request: &TraceContext, thread_id: &ThreadId) -> Span {
    tracing::debug_span!(
        parent: request.span(),
        "turn",
        otel.name = "invoke_agent chatkit",
        gen_ai.operation.name = "invoke_agent",
        gen_ai.agent.name = "chatkit",
        gen_ai.conversation.id = %thread_id,
        chatkit.turn.outcome = Empty,
    )
}

/// How the turn that runs now ended (`chatkit_turns_total`'s `outcome`).
pub(crate) fn record_turn_outcome(outcome: &'static str) {
    Span::current().record("chatkit.turn.outcome", outcome);
}

/// One tool call to an MCP server (GenAI `execute_tool`, over MCP `tools/call`), child of
/// the span the caller runs in. `error.type` is recorded when it fails.
pub(crate) fn tool_call_span(server_name: &str, url: &str, tool: &str) -> Span {
    let span = tracing::debug_span!(
        "execute_tool",
        otel.name = Empty,
        otel.kind = "client",
        gen_ai.operation.name = "execute_tool",
        gen_ai.tool.name = %tool,
        gen_ai.tool.type = "extension",
        mcp.method.name = "tools/call",
        chatkit.mcp.server = %server_name,
        server.address = Empty,
        server.port = Empty,
        error.type = Empty,
        otel.status_code = Empty,
    );
    if !span.is_disabled() {
        span.record("otel.name", format!("execute_tool {tool}"));
        if let Ok(url) = url::Url::parse(url) {
            if let Some(host) = url.host_str() {
                span.record("server.address", host);
            }
            if let Some(port) = url.port_or_known_default() {
                span.record("server.port", port);
            }
        }
    }
    span
}

/// A tool server's tools found for a turn: from the shared catalog, or with `tools/list`
/// (opening the MCP session first if needed).
pub(crate) fn tool_list_span(server_name: &str) -> Span {
    let span = tracing::debug_span!(
        "tools/list",
        otel.name = Empty,
        mcp.method.name = "tools/list",
        chatkit.mcp.server = %server_name,
    );
    if !span.is_disabled() {
        span.record("otel.name", format!("tools/list {server_name}"));
    }
    span
}

/// One group commit in PostgreSQL, child of the span of its first write; the spans of the
/// other writes it carries are linked to it (`follows_from`).
pub(crate) fn commit_span(first_write: &Span, writes: usize, ops: usize, schema: &str) -> Span {
    tracing::debug_span!(
        parent: first_write,
        "commit",
        otel.name = "COMMIT",
        otel.kind = "client",
        db.system.name = "postgresql",
        db.system = "postgresql",
        db.namespace = %schema,
        db.operation.name = "COMMIT",
        db.operation.batch.size = writes,
        chatkit.commit.ops = ops,
        error.type = Empty,
        otel.status_code = Empty,
    )
}

/// Waiting for another instance to hand a thread over (its lease), child of the span the
/// caller runs in.
pub(crate) fn handover_span(thread_id: &str, owner: &str) -> Span {
    tracing::debug_span!(
        "handover",
        otel.name = "chatkit.handover",
        chatkit.thread.id = %thread_id,
        chatkit.handover.owner = %owner,
        error.type = Empty,
        otel.status_code = Empty,
    )
}

/// Marks the span as failed with a low-cardinality `kind` (OTel `error.type`); the span
/// must declare both fields (every span made here does).
pub(crate) fn record_error(span: &Span, kind: &str) {
    span.record("error.type", kind);
    span.record("otel.status_code", "ERROR");
}
