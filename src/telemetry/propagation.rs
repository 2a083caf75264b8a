//! W3C Trace Context at the edge: the incoming `traceparent` continued by the request's span,
//! and the `traceparent` of any span for the engine's outgoing requests.

use std::collections::HashMap;

use actix_web::http::header::HeaderMap;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// actix-web's headers (http 0.2) as the propagator reads them.
struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// Makes `span` continue the trace of the request's `traceparent` (and `tracestate`), if it
/// carries a valid one.
pub fn continue_incoming(span: &tracing::Span, headers: &HeaderMap) {
    if headers.get("traceparent").is_none() {
        return;
    }
    let context = TraceContextPropagator::new().extract(&Headers(headers));
    let _ = span.set_parent(context);
}

/// The `traceparent` that continues `span`'s trace (installed in the engine).
pub fn traceparent(span: &tracing::Span) -> Option<String> {
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&span.context(), &mut carrier);
    carrier.remove("traceparent")
}
