//! Operators' view of the cluster: `GET /admin/threads` (live threads on every instance, with
//! filters and cursor paging) and `GET /admin/instances`. An admin token is a token verified
//! like any other that also carries the configured admin claim; a user token gets 403.

use actix_web::{web, HttpRequest, HttpResponse};
use chatkit_actors::engine::LiveThreadFilter;
use serde::Deserialize;

use super::error::ApiError;
use super::AppState;

async fn require_admin(req: &HttpRequest, state: &AppState) -> Result<(), ApiError> {
    let caller = super::authenticate(req, state).await?;
    if caller.is_admin {
        Ok(())
    } else {
        Err(ApiError::Forbidden)
    }
}

#[derive(Deserialize)]
pub struct ThreadsQuery {
    instance: Option<String>,
    user: Option<String>,
    state: Option<String>,
    limit: Option<u32>,
    after: Option<String>,
}

fn invalid(message: String) -> ApiError {
    ApiError::BadRequest(chatkit_actors::protocol::RequestError::InvalidParams {
        op: "admin.threads".into(),
        message,
    })
}

/// The query is read in the handler, after authentication: an extractor would answer a bad
/// query before anyone was asked for a token.
pub async fn threads(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    require_admin(&req, &state).await?;
    let q = web::Query::<ThreadsQuery>::from_query(req.query_string())
        .map_err(|e| invalid(super::extractors::query_message(&e)))?
        .into_inner();
    let bad = |what: &str| invalid(format!("invalid {what}"));
    let plain = |s: &str| !s.is_empty() && s.len() <= 255 && !s.chars().any(char::is_control);
    if q.state
        .as_deref()
        .is_some_and(|s| s != "idle" && s != "streaming")
    {
        return Err(bad("state (idle or streaming)"));
    }
    for (name, value) in [
        ("instance", &q.instance),
        ("user", &q.user),
        ("after", &q.after),
    ] {
        if value.as_deref().is_some_and(|v| !plain(v)) {
            return Err(bad(name));
        }
    }
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let filter = LiveThreadFilter {
        instance_id: q.instance,
        user_id: q.user,
        state: q.state,
    };
    let (rows, has_more) = state
        .engine
        .admin_live_threads(&filter, limit, q.after.as_deref())
        .await?;
    let mut body = serde_json::json!({ "data": rows, "has_more": has_more });
    if has_more {
        body["after"] = rows.last().map(|r| r.thread_id.clone()).into();
    }
    Ok(HttpResponse::Ok().json(body))
}

pub async fn instances(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    require_admin(&req, &state).await?;
    let rows = state.engine.admin_instances().await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "data": rows })))
}

const PAGE: &str = include_str!("admin.html");

/// The admin view: a page over the two endpoints above (the token is pasted in the page and
/// sent with each call; the page itself holds no data).
pub async fn page() -> HttpResponse {
    super::inline_page(PAGE)
}
