//! Engine metrics, registered in the process-wide Prometheus registry (the edge serves it on
//! `GET /metrics`). Labels never carry user ids, thread ids or tokens: only bounded values.

use std::sync::LazyLock;

use prometheus::{
    register_histogram, register_histogram_vec, register_int_counter, register_int_counter_vec,
    register_int_gauge, register_int_gauge_vec, Histogram, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec,
};

/// Seconds buckets from 1 ms to ~30 s.
fn latency_buckets() -> Vec<f64> {
    prometheus::exponential_buckets(0.001, 2.0, 16).expect("valid buckets")
}

/// The label values each labelled counter takes (the call sites name the same values), so
/// that every series exists at 0 from start: a rate or an alert has something to read
/// before the first failure.
pub mod labels {
    /// `chatkit_turns_total{outcome}`: how a turn ended, or `rejected` (its input was not
    /// stored).
    pub const TURN_OUTCOMES: &[&str] = &[
        "answered",
        "cancelled",
        "failed",
        "commit_failed",
        "action_failed",
        "rejected",
    ];
    /// `chatkit_persistence_commit_failures_total{kind}`.
    pub const COMMIT_FAILURES: &[&str] = &["unavailable", "query"];
    /// `chatkit_model_errors_total{kind}`: one per `ModelError` variant.
    pub const MODEL_ERRORS: &[&str] =
        &["http", "unreachable", "interrupted", "timeout", "protocol"];
    /// `chatkit_model_tokens_total{direction}`.
    pub const TOKEN_DIRECTIONS: &[&str] = &["input", "output"];
    /// `chatkit_attachment_uploads_total{outcome}`.
    pub const UPLOAD_OUTCOMES: &[&str] = &[
        "stored",
        "refused_type",
        "refused_size",
        "refused_signature",
        "refused_repeat",
        "refused_not_found",
        "refused_input",
        "refused_quota",
        "refused_in_progress",
        "interrupted",
        "timed_out",
        "failed",
    ];
    /// `chatkit_widgets_total{source, outcome}`.
    pub const WIDGET_SOURCES: &[&str] = &["meta", "template", "result", "progress", "action"];
    pub const WIDGET_OUTCOMES: &[&str] = &["shown", "rejected"];
    /// `chatkit_widget_actions_total{outcome}`.
    pub const WIDGET_ACTION_OUTCOMES: &[&str] = &["replaced", "recorded", "failed"];
    /// `chatkit_trace_spans_dropped_total{reason}`: spans not exported because the export
    /// queue was full, or because the collector refused them or could not be reached.
    pub const TRACE_SPAN_DROPS: &[&str] = &["queue_full", "export_failed"];
    /// `chatkit_hosted_tool_calls_total{type, outcome}`: the provider's tools by type (the
    /// ones this server shows) and how each call ended.
    pub const HOSTED_TOOL_TYPES: &[&str] = &[
        "image_generation",
        "web_search",
        "file_search",
        "code_interpreter",
    ];
    pub const HOSTED_TOOL_OUTCOMES: &[&str] = &["completed", "failed", "cancelled"];
    /// `chatkit_replica_reads_total{outcome}`.
    pub const REPLICA_READS: &[&str] = &["replica", "behind", "unreachable"];
    /// `chatkit_database_timeouts_total{operation}`: every operation `Store::timed` runs
    /// (checked there in debug builds).
    pub const DATABASE_OPERATIONS: &[&str] = &[
        "abandon_upload",
        "acquire_lease",
        "apply",
        "attachment",
        "attachment_chunk",
        "attachment_contents",
        "claim_upload",
        "delete_attachment",
        "delete_unused_attachments",
        "finish_upload",
        "heartbeat",
        "insert_attachment",
        "insert_chunk",
        "insert_generated_file",
        "instances",
        "leave_cluster",
        "list_items",
        "list_threads",
        "live_threads",
        "load_item",
        "load_thread",
        "load_user_thread",
        "recent_items",
        "release_own_lease",
        "request_handover",
        "url_signing_key",
        "insert_attachment_within",
        "reserve_upload",
        "user_attachments",
        "user_thread_items",
    ];

    /// Debug builds (the tests) stop at an operation missing from the list above, whose
    /// series would otherwise appear only at its first timeout.
    pub(crate) fn check_database_operation(what: &str) {
        debug_assert!(
            DATABASE_OPERATIONS.contains(&what),
            "add {what:?} to metrics::labels::DATABASE_OPERATIONS"
        );
    }
}

pub struct EngineMetrics {
    /// Widgets from tool results by source (`meta`, `template`, `result`, `progress`,
    /// `action`) and outcome (`shown`, `rejected`).
    pub widgets: IntCounterVec,
    /// Widget actions by outcome (`replaced`, `recorded`, `failed`).
    pub widget_actions: IntCounterVec,
    /// Client reads with standbys configured, by where they ran (`replica`) or why not
    /// (`behind`, `unreachable`).
    pub replica_reads: IntCounterVec,
    pub live_thread_actors: IntGauge,
    pub turns_in_flight: IntGauge,
    pub turns: IntCounterVec,
    pub turn_seconds: Histogram,
    pub time_to_first_token_seconds: Histogram,
    pub batch_writes: Histogram,
    pub commit_seconds: Histogram,
    pub commit_failures: IntCounterVec,
    pub model_errors: IntCounterVec,
    pub mcp_call_seconds: HistogramVec,
    pub mcp_errors: IntCounterVec,
    /// 1 while a tool server answers HTTP at its URL, 0 while it does not.
    pub mcp_server_up: IntGaugeVec,
    pub attachment_uploads: IntCounterVec,
    pub attachment_upload_bytes: IntCounter,
    pub database_timeouts: IntCounterVec,
    pub model_tokens: IntCounterVec,
    /// Trace spans dropped instead of exported, by reason (`queue_full`, `export_failed`).
    pub trace_spans_dropped: IntCounterVec,
    /// Calls of the provider's hosted tools by type and outcome.
    pub hosted_tool_calls: IntCounterVec,
}

pub static METRICS: LazyLock<EngineMetrics> = LazyLock::new(|| EngineMetrics {
    live_thread_actors: register_int_gauge!(
        "chatkit_live_thread_actors",
        "Thread actors in memory"
    )
    .expect("metric registers"),
    turns_in_flight: register_int_gauge!(
        "chatkit_turns_in_flight",
        "Turns (open response streams) running"
    )
    .expect("metric registers"),
    turns: register_int_counter_vec!(
        "chatkit_turns_total",
        "Turns by how they ended",
        &["outcome"]
    )
    .expect("metric registers"),
    turn_seconds: register_histogram!(
        "chatkit_turn_seconds",
        "Whole-turn duration, input commit to last event",
        latency_buckets()
    )
    .expect("metric registers"),
    time_to_first_token_seconds: register_histogram!(
        "chatkit_time_to_first_token_seconds",
        "From the start of a turn to its first text delta",
        latency_buckets()
    )
    .expect("metric registers"),
    batch_writes: register_histogram!(
        "chatkit_persistence_batch_writes",
        "Writes per group commit",
        vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0]
    )
    .expect("metric registers"),
    commit_seconds: register_histogram!(
        "chatkit_persistence_commit_seconds",
        "Group commit latency",
        latency_buckets()
    )
    .expect("metric registers"),
    commit_failures: register_int_counter_vec!(
        "chatkit_persistence_commit_failures_total",
        "Failed group commits",
        &["kind"]
    )
    .expect("metric registers"),
    model_errors: register_int_counter_vec!(
        "chatkit_model_errors_total",
        "Model calls that failed",
        &["kind"]
    )
    .expect("metric registers"),
    mcp_call_seconds: register_histogram_vec!(
        "chatkit_mcp_call_seconds",
        "MCP tool call latency",
        &["server"],
        latency_buckets()
    )
    .expect("metric registers"),
    mcp_errors: register_int_counter_vec!(
        "chatkit_mcp_errors_total",
        "MCP servers unavailable or tool calls failed at the transport",
        &["server"]
    )
    .expect("metric registers"),
    mcp_server_up: register_int_gauge_vec!(
        "chatkit_mcp_server_up",
        "Whether each configured MCP server answers (1) or not (0)",
        &["server"]
    )
    .expect("metric registers"),
    attachment_upload_bytes: register_int_counter!(
        "chatkit_attachment_upload_bytes_total",
        "Bytes of attachments stored"
    )
    .expect("metric registers"),
    model_tokens: register_int_counter_vec!(
        "chatkit_model_tokens_total",
        "Tokens the model reported using, by direction (input, output)",
        &["direction"]
    )
    .expect("metric registers"),
    database_timeouts: register_int_counter_vec!(
        "chatkit_database_timeouts_total",
        "Database operations that took longer than database.operation_timeout_secs",
        &["operation"]
    )
    .expect("metric registers"),
    attachment_uploads: register_int_counter_vec!(
        "chatkit_attachment_uploads_total",
        "Attachment uploads by outcome (stored, or why they were refused)",
        &["outcome"]
    )
    .expect("metric registers"),
    widgets: register_int_counter_vec!(
        "chatkit_widgets_total",
        "Widgets from tool results by source and outcome (shown or rejected)",
        &["source", "outcome"]
    )
    .expect("metric registers"),
    replica_reads: register_int_counter_vec!(
        "chatkit_replica_reads_total",
        "Client reads with standbys configured: run on a caught-up standby, or why not",
        &["outcome"]
    )
    .expect("metric registers"),
    trace_spans_dropped: register_int_counter_vec!(
        "chatkit_trace_spans_dropped_total",
        "Trace spans dropped instead of exported (queue full, or the collector failed)",
        &["reason"]
    )
    .expect("metric registers"),
    hosted_tool_calls: register_int_counter_vec!(
        "chatkit_hosted_tool_calls_total",
        "Calls of the model provider's hosted tools by type and outcome",
        &["type", "outcome"]
    )
    .expect("metric registers"),
    widget_actions: register_int_counter_vec!(
        "chatkit_widget_actions_total",
        "Widget actions by outcome (replaced, recorded, failed)",
        &["outcome"]
    )
    .expect("metric registers"),
});

impl EngineMetrics {
    /// Every known series at 0; `mcp_servers` are the configured `[[mcp.servers]]` names
    /// (the values of the `server` label).
    pub fn export_known(&self, mcp_servers: &[&str]) {
        let each = |counter: &IntCounterVec, values: &[&str]| {
            for value in values {
                counter.with_label_values(&[value]);
            }
        };
        each(&self.turns, labels::TURN_OUTCOMES);
        each(&self.commit_failures, labels::COMMIT_FAILURES);
        each(&self.model_errors, labels::MODEL_ERRORS);
        each(&self.model_tokens, labels::TOKEN_DIRECTIONS);
        each(&self.attachment_uploads, labels::UPLOAD_OUTCOMES);
        each(&self.widget_actions, labels::WIDGET_ACTION_OUTCOMES);
        each(&self.replica_reads, labels::REPLICA_READS);
        each(&self.trace_spans_dropped, labels::TRACE_SPAN_DROPS);
        each(&self.database_timeouts, labels::DATABASE_OPERATIONS);
        each(&self.mcp_errors, mcp_servers);
        for server in mcp_servers {
            self.mcp_call_seconds.with_label_values(&[server]);
        }
        for kind in labels::HOSTED_TOOL_TYPES {
            for outcome in labels::HOSTED_TOOL_OUTCOMES {
                self.hosted_tool_calls.with_label_values(&[kind, outcome]);
            }
        }
        for source in labels::WIDGET_SOURCES {
            for outcome in labels::WIDGET_OUTCOMES {
                self.widgets.with_label_values(&[source, outcome]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::labels::DATABASE_OPERATIONS;

    /// Every `timed("…")` operation of the store is a listed label value (else its series
    /// would be missing until its first timeout, and debug builds stop on it).
    #[test]
    fn every_timed_database_operation_is_listed() {
        let store = concat!(env!("CARGO_MANIFEST_DIR"), "/src/store");
        let mut found = 0;
        for entry in std::fs::read_dir(store).unwrap() {
            let source = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            for piece in source.split("timed(\"").skip(1) {
                let name = piece.split('"').next().unwrap();
                assert!(DATABASE_OPERATIONS.contains(&name), "{name} is not listed");
                found += 1;
            }
        }
        assert!(found >= 10, "the store's operations were found ({found})");
    }
}
