//! `GET /metrics` (Prometheus text format) on its own listener, and the edge's own counters.

use std::sync::LazyLock;

use actix_web::{web, App, HttpResponse, HttpServer};
use prometheus::{
    register_int_counter, register_int_counter_vec, Encoder, IntCounter, IntCounterVec, TextEncoder,
};

/// Requests by operation and HTTP status.
pub static REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "chatkit_http_requests_total",
        "POST /chatkit requests by operation and status",
        &["op", "status"]
    )
    .expect("metric registers")
});

/// Panics caught while handling a request (each answered 500 `internal`).
pub static PANICS: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "chatkit_http_panics_total",
        "request handlers that panicked and were answered 500"
    )
    .expect("metric registers")
});

/// Every known series at 0 from start: the engine's (`mcp_servers`: the configured MCP
/// servers' names), each op's requests answered 200, the panic counter.
pub fn export_known(mcp_servers: &[&str]) {
    chatkit_actors::metrics::METRICS.export_known(mcp_servers);
    for op in chatkit_actors::protocol::requests::OPERATION_NAMES {
        REQUESTS.with_label_values(&[op, "200"]);
    }
    let _ = &*PANICS;
}

async fn metrics() -> HttpResponse {
    // Touch the engine's metrics so they are registered even before the first turn.
    let _ = &*chatkit_actors::metrics::METRICS;
    let _ = &*REQUESTS;
    let _ = &*PANICS;
    let mut body = Vec::new();
    let encoder = TextEncoder::new();
    if encoder.encode(&prometheus::gather(), &mut body).is_err() {
        return HttpResponse::InternalServerError().finish();
    }
    HttpResponse::Ok()
        .content_type(encoder.format_type())
        .body(body)
}

/// The metrics server on an already bound listener (bound at start-up, so a port in use is
/// a start-up error rather than metrics silently missing).
pub fn server(listener: std::net::TcpListener) -> std::io::Result<actix_web::dev::Server> {
    let server = HttpServer::new(|| App::new().route("/metrics", web::get().to(metrics)))
        .workers(1)
        .disable_signals()
        .listen(listener)?;
    for addr in server.addrs() {
        tracing::info!("metrics on http://{addr}/metrics");
        println!("metrics on http://{addr}/metrics");
    }
    Ok(server.run())
}
