//! The HTTP edge: routes, shared state, the SSE relay and the error mapping.

mod admin;
mod chatkit;
pub mod error;
mod health;
pub mod limits;
pub mod metrics;
mod playground;
pub mod request_id;
mod sse;

use std::time::Duration;

use actix_web::{web, HttpResponse};
use chatkit_actors::Engine;

use crate::auth::Authenticator;

/// What every handler shares.
pub struct AppState {
    pub engine: Engine,
    pub auth: Authenticator,
    pub limits: std::sync::Arc<limits::Limiter>,
    /// For development tokens (`POST /dev/token`, development mode only).
    pub auth_settings: crate::settings::AuthSettings,
    pub max_body_bytes: usize,
    pub body_timeout: Duration,
}

/// Which optional routes are on.
#[derive(Clone, Copy, Debug)]
pub struct Routes {
    pub playground: bool,
    pub dev_tokens: bool,
}

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig, routes: Routes) {
    if routes.playground {
        cfg.route("/", web::get().to(playground::page))
            .route("/admin", web::get().to(admin::page));
    }
    if routes.dev_tokens {
        cfg.route("/dev/token", web::post().to(playground::dev_token));
    }
    cfg.route("/admin/threads", web::get().to(admin::threads))
        .route("/admin/instances", web::get().to(admin::instances));
    cfg.route("/chatkit", web::post().to(chatkit::chatkit))
        .route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .default_service(web::to(not_found));
}

async fn not_found() -> HttpResponse {
    HttpResponse::NotFound()
        .content_type("application/json")
        .body(r#"{"error":{"code":"not_found","message":"no such endpoint"}}"#)
}
