//! The playground: a self-contained page at `GET /` that speaks the ChatKit protocol to
//! `/chatkit` (no CDN, nothing beyond this server), and, in development mode only,
//! `POST /dev/token` minting a short-lived token for a chosen user id.

use actix_web::{web, HttpResponse};
use chatkit_actors::engine::ComposerOptions;
use serde::Deserialize;

use super::AppState;

const PAGE: &str = include_str!("playground.html");

/// Lifetime of development tokens.
const DEV_TOKEN_TTL_SECS: u64 = 15 * 60;

/// Where the page shows a problem of the server's configuration (the model not configured).
const NOTICE_SLOT: &str = "<!--SERVER-NOTICE-->";

/// Where the page reads what its composer offers (model picker, tool menu, dictation).
const COMPOSER_SLOT: &str = "<!--COMPOSER-OPTIONS-->";

pub async fn page(state: web::Data<AppState>) -> HttpResponse {
    let notice = match &state.model_notice {
        Some(notice) => format!(
            r#"<div id="notice" data-testid="notice" role="alert">{}</div>"#,
            escape_html(notice)
        ),
        None => String::new(),
    };
    let options = composer_options_json(&state.engine.composer_options());
    let page = PAGE.replacen(NOTICE_SLOT, &notice, 1).replacen(
        COMPOSER_SLOT,
        &format!(
            r#"<script type="application/json" id="composer-options">{}</script>"#,
            json_for_script(&options)
        ),
        1,
    );
    super::inline_page(page)
}

/// `{"models": [{"id", "label"}], "tools": [{"id", "label"}], "dictation": bool}`.
fn composer_options_json(options: &ComposerOptions) -> serde_json::Value {
    let entries = |list: &[(String, String)]| {
        list.iter()
            .map(|(id, label)| serde_json::json!({ "id": id, "label": label }))
            .collect::<Vec<_>>()
    };
    serde_json::json!({
        "models": entries(&options.models),
        "tools": entries(&options.tools),
        "dictation": options.dictation,
    })
}

/// JSON that cannot end its `<script>` element or open a comment, nor break a JavaScript
/// string: `<`, `>`, `&` and the line/paragraph separators as `\uXXXX` escapes (they can only
/// occur inside JSON strings, where the escape means the same character).
fn json_for_script(value: &serde_json::Value) -> String {
    let json = value.to_string();
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[derive(Deserialize)]
pub struct DevTokenRequest {
    sub: String,
}

pub async fn dev_token(
    state: web::Data<AppState>,
    body: web::Json<DevTokenRequest>,
) -> HttpResponse {
    let sub = body.sub.trim();
    let valid = !sub.is_empty()
        && sub.len() <= 64
        && sub
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !valid {
        return HttpResponse::BadRequest()
            .content_type("application/json")
            .body(r#"{"error":{"code":"invalid_params","message":"sub must be 1-64 letters, digits, '-' or '_'"}}"#);
    }
    match crate::auth::mint_dev_token(&state.auth_settings, sub, DEV_TOKEN_TTL_SECS) {
        Ok(token) => HttpResponse::Ok().json(serde_json::json!({ "token": token, "expires_in": DEV_TOKEN_TTL_SECS })),
        Err(_) => HttpResponse::BadRequest().content_type("application/json").body(
            r#"{"error":{"code":"unsupported_operation","message":"development tokens need an HS auth.jwt_secret"}}"#,
        ),
    }
}
