//! `/healthz` (the process answers) and `/readyz` (database reachable, migrations applied).
//! `/readyz` lists each dependency's state in its body; its status is about the database
//! alone (a tool server that is down costs its tools, not the service).

use actix_web::{web, HttpResponse};
use serde_json::{json, Map, Value};

use super::AppState;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(r#"{"status":"ok"}"#)
}

pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let ready = state.engine.is_ready().await;
    let tool_servers: Map<String, Value> = state
        .engine
        .tool_server_states()
        .into_iter()
        .map(|(name, up)| (name, Value::from(if up { "up" } else { "down" })))
        .collect();
    let body = json!({
        "status": if ready { "ready" } else { "unavailable" },
        "database": if ready { "up" } else { "down" },
        "tool_servers": tool_servers,
    });
    let mut response = if ready {
        HttpResponse::Ok()
    } else {
        HttpResponse::ServiceUnavailable()
    };
    response
        .content_type("application/json")
        .body(body.to_string())
}
