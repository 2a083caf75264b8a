//! Logging and traces. The log is human-readable by default, JSON with `log.format = "json"`;
//! `RUST_LOG` wins over `log.level`. Tokens, keys and passwords are never passed to a log macro
//! nor recorded in a span.
//!
//! Traces (README "Traces") are exported over OTLP/HTTP when `telemetry.otlp_endpoint` or the
//! standard `OTEL_EXPORTER_OTLP_ENDPOINT` is set: the `tracing` spans of both crates become
//! OpenTelemetry spans, one trace per request (`chatkit_actors::trace` carries the request's
//! span between actors), and each log line names its `trace_id` and `span_id`. Off, none of
//! this is installed: the log is set up exactly as without it.
//!
//! - `export.rs` — whether and where to export, and the tracer.
//! - `processor.rs` — the bounded queue between the tracer and the exporter.
//! - `propagation.rs` — W3C `traceparent` in and out.
//! - `log_ids.rs` — `trace_id` / `span_id` on log lines.
//! - `http_span.rs` — the HTTP server span of each request.

mod export;
mod http_span;
mod log_ids;
mod processor;
pub mod propagation;

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::{Level, Metadata};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{filter, EnvFilter, Layer, Registry};

pub use http_span::{record_status, server_span};

use crate::settings::{LogSettings, TelemetrySettings};

static TRACES_ON: AtomicBool = AtomicBool::new(false);

/// Whether spans are exported (the HTTP server span then carries the HTTP conventions).
pub fn traces_on() -> bool {
    TRACES_ON.load(Ordering::Relaxed)
}

/// What `init` set up; `shutdown` sends the spans still queued (bounded in time).
#[must_use]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    pub fn shutdown(self) {
        if let Some(provider) = self.provider {
            let _ = provider.shutdown_with_timeout(std::time::Duration::from_secs(5));
        }
    }
}

/// Sets up the log, and the trace export when configured. A trace exporter that cannot start
/// is said on stderr; the server runs on without traces.
pub fn init(log: &LogSettings, telemetry: &TelemetrySettings) -> Telemetry {
    let env = |name: &str| std::env::var(name).ok();
    let traced = export::target(telemetry.otlp_endpoint.as_deref(), &env)
        .map(|target| export::tracer(telemetry, target, &env));
    let (provider, tracer) = match traced {
        None => {
            init_log_only(log);
            return Telemetry { provider: None };
        }
        Some(Err(error)) => {
            init_log_only(log);
            tracing::error!(%error, "traces are off");
            return Telemetry { provider: None };
        }
        Some(Ok(traced)) => traced,
    };
    let spans = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_location(false)
        .with_target(false)
        .with_threads(false)
        .with_tracked_inactivity(false)
        .with_filter(filter::filter_fn(exported));
    let result = Registry::default()
        .with(log_layer(log))
        .with(spans)
        .try_init();
    if result.is_ok() {
        TRACES_ON.store(true, Ordering::Relaxed);
        chatkit_actors::trace::install(chatkit_actors::trace::TraceExport {
            traceparent: propagation::traceparent,
            capture_content: telemetry.capture_content,
        });
    }
    Telemetry {
        provider: Some(provider),
    }
}

/// What becomes part of a trace: our spans (the engine's are at `DEBUG`), and warnings and
/// errors as events of the span they happen in.
fn exported(metadata: &Metadata<'_>) -> bool {
    exported_by(metadata.target(), *metadata.level(), metadata.is_span())
}

fn exported_by(target: &str, level: Level, span: bool) -> bool {
    let most_verbose = if span { Level::DEBUG } else { Level::WARN };
    target.starts_with("chatkit") && level <= most_verbose
}

fn log_filter(log: &LogSettings) -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(log.level.clone()))
}

/// The log without traces, as it always was.
fn init_log_only(log: &LogSettings) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(log_filter(log))
        .with_writer(std::io::stderr);
    let result = if log.json {
        builder.json().try_init()
    } else {
        builder.with_ansi(false).try_init()
    };
    let _ = result;
}

/// The log beside the trace layer: its own filter, and the trace and span ids on each line.
fn log_layer(log: &LogSettings) -> Box<dyn Layer<Registry> + Send + Sync> {
    let filter = log_filter(log);
    if log.json {
        tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .event_format(log_ids::WithTraceIds::json(
                tracing_subscriber::fmt::format().json(),
            ))
            .with_filter(filter)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(std::io::stderr)
            .event_format(log_ids::WithTraceIds::text(
                tracing_subscriber::fmt::format().with_ansi(false),
            ))
            .with_filter(filter)
            .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::exported_by;
    use tracing::Level;

    #[test]
    fn our_spans_to_debug_and_our_warnings_are_exported() {
        assert!(exported_by("chatkit_actors::trace", Level::DEBUG, true));
        assert!(exported_by(
            "chatkit_server::telemetry::http_span",
            Level::INFO,
            true
        ));
        assert!(!exported_by("chatkit_actors::store", Level::TRACE, true));
        assert!(
            !exported_by("h2::proto", Level::DEBUG, true),
            "libraries' spans are not ours"
        );
        assert!(exported_by("chatkit_actors::mcp", Level::WARN, false));
        assert!(!exported_by("chatkit_actors::mcp", Level::INFO, false));
    }
}
