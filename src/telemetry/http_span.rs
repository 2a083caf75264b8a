//! The span of each HTTP request. With traces on it is the trace's server span (the HTTP
//! semantic conventions, continuing an incoming `traceparent`); off, it is the log's
//! `request` span as always. It never records a header other than the user agent.

use actix_web::dev::ServiceRequest;
use tracing::field::Empty;
use tracing::Span;

use super::{propagation, traces_on};

/// The request's span, with its `request_id`.
pub fn server_span(req: &ServiceRequest, request_id: &str) -> Span {
    if !traces_on() {
        return tracing::info_span!("request", request_id = %request_id, method = %req.method(), path = %req.path());
    }
    let route = req.match_pattern();
    let name = match &route {
        Some(route) => format!("{} {route}", req.method()),
        None => req.method().to_string(),
    };
    let user_agent = req
        .headers()
        .get(actix_web::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        otel.name = %name,
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = %req.method(),
        url.path = %req.path(),
        url.scheme = %req.connection_info().scheme(),
        http.route = route.as_deref().unwrap_or(""),
        user_agent.original = %user_agent,
        http.response.status_code = Empty,
    );
    propagation::continue_incoming(&span, req.headers());
    span
}

/// Records the answer's status on the request's span (a 5xx marks it failed).
pub fn record_status(span: &Span, status: u16) {
    if !traces_on() {
        return;
    }
    span.record("http.response.status_code", status);
    if status >= 500 {
        span.record("otel.status_code", "ERROR");
    }
}
