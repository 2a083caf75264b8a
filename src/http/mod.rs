//! The HTTP edge: routes, shared state, the SSE relay and the error mapping.

mod admin;
mod attachments;
mod chatkit;
pub mod error;
mod extractors;
pub mod forwarded;
mod health;
pub mod limits;
pub mod metrics;
pub mod panics;
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
    /// Dictation's own per-user rate (`transcription.requests_per_minute`).
    pub transcription_limits: std::sync::Arc<limits::Limiter>,
    /// For development tokens (`POST /dev/token`, development mode only).
    pub auth_settings: crate::settings::AuthSettings,
    pub max_body_bytes: usize,
    pub body_timeout: Duration,
    /// Peers whose `Forwarded` / `X-Forwarded-*` headers count (`server.trusted_proxies`).
    pub trusted_proxies: forwarded::TrustedProxies,
    /// Shown by the playground when the model cannot work as configured (no API key).
    pub model_notice: Option<String>,
}

impl AppState {
    /// One request of `caller` against the per-user rate (429 beyond it).
    fn check_rate(&self, caller: &crate::auth::Caller) -> Result<(), error::ApiError> {
        self.limits
            .check_rate(caller.user_id.as_str())
            .map_err(error::ApiError::RateLimited)
    }
}

/// The body length a request announces (`Content-Length`), if it does.
fn declared_length(req: &actix_web::HttpRequest) -> Option<u64> {
    req.headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// The caller of a request, from its `Authorization` header.
async fn authenticate(
    req: &actix_web::HttpRequest,
    state: &AppState,
) -> Result<crate::auth::Caller, error::ApiError> {
    let header = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    state
        .auth
        .authenticate(header)
        .await
        .map_err(error::ApiError::Unauthorized)
}

/// A self-contained page (inline script and style, talking only to this origin).
fn inline_page(body: impl actix_web::body::MessageBody + 'static) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((
            "content-security-policy",
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' blob: data: https:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        ))
        .insert_header(("x-content-type-options", "nosniff"))
        .body(body)
}

/// CORS for pages of `origins` (`*`: any): preflights answered, and the answers carry the
/// headers a browser needs to read them (`x-request-id` and `retry-after` readable too). A
/// request from another origin is served as any other, only without those headers (the
/// browser keeps its answer from the page).
pub fn cors(origins: &[String]) -> actix_cors::Cors {
    let mut cors = actix_cors::Cors::default()
        .allowed_methods(["GET", "POST"])
        .allowed_headers([
            actix_web::http::header::AUTHORIZATION,
            actix_web::http::header::CONTENT_TYPE,
            actix_web::http::header::HeaderName::from_static("x-request-id"),
        ])
        .expose_headers([
            actix_web::http::header::HeaderName::from_static("x-request-id"),
            actix_web::http::header::RETRY_AFTER,
        ])
        .max_age(3600)
        .block_on_origin_mismatch(false);
    for origin in origins {
        cors = if origin == "*" {
            cors.allow_any_origin()
        } else {
            cors.allowed_origin(origin)
        };
    }
    cors
}

/// Which optional routes are on.
#[derive(Clone, Copy, Debug)]
pub struct Routes {
    pub playground: bool,
    pub dev_tokens: bool,
}

/// Registers every route. Each path serves one method; any other gets 405 with `Allow`.
pub fn configure(cfg: &mut web::ServiceConfig, routes: Routes) {
    extractors::register(cfg);
    if routes.playground {
        cfg.service(only("GET", "/", web::get().to(playground::page)))
            .service(only("GET", "/admin", web::get().to(admin::page)));
    }
    if routes.dev_tokens {
        cfg.service(only(
            "POST",
            "/dev/token",
            web::post().to(playground::dev_token),
        ));
    }
    cfg.service(only("GET", "/admin/threads", web::get().to(admin::threads)))
        .service(only(
            "GET",
            "/admin/instances",
            web::get().to(admin::instances),
        ))
        .service(only("POST", "/chatkit", web::post().to(chatkit::chatkit)))
        .service(only(
            "POST",
            "/attachments",
            web::post().to(attachments::direct_upload),
        ))
        .service(only(
            "POST",
            "/attachments/{id}/upload",
            web::post().to(attachments::upload),
        ))
        .service(only(
            "GET",
            "/attachments/{id}/content",
            web::get().to(attachments::content),
        ))
        .service(only("GET", "/healthz", web::get().to(health::healthz)))
        .service(only("GET", "/readyz", web::get().to(health::readyz)))
        .default_service(web::to(not_found));
}

/// `path` served by `route`, whose method is `allow`; other methods get 405 naming it.
fn only(allow: &'static str, path: &str, route: actix_web::Route) -> actix_web::Resource {
    web::resource(path)
        .route(route)
        .default_service(web::to(move || async move {
            Err::<HttpResponse, _>(error::ApiError::MethodNotAllowed(allow))
        }))
}

async fn not_found() -> HttpResponse {
    HttpResponse::NotFound()
        .content_type("application/json")
        .body(r#"{"error":{"code":"not_found","message":"no such endpoint"}}"#)
}
