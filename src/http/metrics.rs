//! `GET /metrics` (Prometheus text format) on its own listener, and the edge's own counters.

use std::sync::LazyLock;

use actix_web::{web, App, HttpResponse, HttpServer};
use prometheus::{register_int_counter_vec, Encoder, IntCounterVec, TextEncoder};

/// Requests by operation and HTTP status.
pub static REQUESTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "chatkit_http_requests_total",
        "POST /chatkit requests by operation and status",
        &["op", "status"]
    )
    .expect("metric registers")
});

async fn metrics() -> HttpResponse {
    // Touch the engine's metrics so they are registered even before the first turn.
    let _ = &*chatkit_actors::metrics::METRICS;
    let _ = &*REQUESTS;
    let mut body = Vec::new();
    let encoder = TextEncoder::new();
    if encoder.encode(&prometheus::gather(), &mut body).is_err() {
        return HttpResponse::InternalServerError().finish();
    }
    HttpResponse::Ok()
        .content_type(encoder.format_type())
        .body(body)
}

/// The metrics listener; `None` if the address cannot be bound (logged, not fatal).
pub fn server(bind: std::net::SocketAddr) -> Option<actix_web::dev::Server> {
    let server = HttpServer::new(|| App::new().route("/metrics", web::get().to(metrics)))
        .workers(1)
        .disable_signals()
        .bind(bind);
    match server {
        Ok(server) => {
            for addr in server.addrs() {
                tracing::info!("metrics on http://{addr}/metrics");
                println!("metrics on http://{addr}/metrics");
            }
            Some(server.run())
        }
        Err(error) => {
            tracing::warn!(%bind, %error, "cannot serve metrics; continuing without them");
            None
        }
    }
}
