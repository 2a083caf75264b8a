//! actix-web's extractors (`Query`, `Path`, `Json`) answer their own failures as
//! `text/plain`; these handlers make each of them our JSON error (`error.rs`), so every error
//! a client can cause is `{"error":{"code":…,"message":…}}`. Handlers that need
//! authentication read their query after it instead (an extractor runs before the handler).

use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::web;
use chatkit_actors::protocol::RequestError;
use chatkit_actors::text::shorten_for_display;

use super::error::ApiError;

/// Error messages quoting client text are cut to this many bytes.
const MAX_MESSAGE_BYTES: usize = 256;

/// Every extractor of the app answers its errors as JSON.
pub(super) fn register(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::QueryConfig::default().error_handler(|error, _| query_error("query", &error).into()),
    )
    .app_data(web::PathConfig::default().error_handler(|error, _| path_error(&error).into()))
    .app_data(web::JsonConfig::default().error_handler(|error, _| json_error(error).into()));
}

/// What is wrong with a query string, bounded (serde's message may quote it).
pub(super) fn query_message(error: &QueryPayloadError) -> String {
    let QueryPayloadError::Deserialize(inner) = error else {
        return "invalid query string".into();
    };
    shorten_for_display(&format!("invalid query string: {inner}"), MAX_MESSAGE_BYTES)
}

/// A query that does not fit: 400 `invalid_params`.
pub(super) fn query_error(op: &str, error: &QueryPayloadError) -> ApiError {
    ApiError::BadRequest(RequestError::InvalidParams {
        op: op.into(),
        message: query_message(error),
    })
}

/// A path whose segments do not fit: 400 `invalid_request`.
fn path_error(error: &PathError) -> ApiError {
    let PathError::Deserialize(inner) = error else {
        return ApiError::BadRequest(RequestError::InvalidEnvelope("invalid path".into()));
    };
    ApiError::BadRequest(RequestError::InvalidEnvelope(shorten_for_display(
        &format!("invalid path: {inner}"),
        MAX_MESSAGE_BYTES,
    )))
}

/// A JSON body that does not fit: 413, or 400 `invalid_request` / `invalid_json`.
fn json_error(error: JsonPayloadError) -> ApiError {
    match error {
        JsonPayloadError::OverflowKnownLength { limit, .. }
        | JsonPayloadError::Overflow { limit } => ApiError::PayloadTooLarge(limit),
        JsonPayloadError::ContentType => ApiError::BadRequest(RequestError::InvalidEnvelope(
            "Content-Type must be application/json".into(),
        )),
        JsonPayloadError::Deserialize(inner) => {
            let message = shorten_for_display(&inner.to_string(), MAX_MESSAGE_BYTES);
            match inner.classify() {
                serde_json::error::Category::Data => {
                    ApiError::BadRequest(RequestError::InvalidEnvelope(message))
                }
                _ => ApiError::BadRequest(RequestError::InvalidJson(message)),
            }
        }
        _ => ApiError::BadRequest(RequestError::InvalidJson(
            "the body could not be read".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use actix_web::ResponseError;

    use super::*;

    #[test]
    fn extractor_failures_are_our_json_errors() {
        let query = web::Query::<std::collections::HashMap<String, u32>>::from_query("limit=abc")
            .unwrap_err();
        let error = query_error("admin.threads", &query);
        assert_eq!(error.status_and_code().1, "invalid_params");
        assert!(error.to_string().contains("invalid digit"), "{error}");
        let body = serde_json::from_str::<serde_json::Value>("{").unwrap_err();
        let error = json_error(JsonPayloadError::Deserialize(body));
        assert_eq!(error.status_and_code().1, "invalid_json");
        let error = json_error(JsonPayloadError::ContentType);
        assert_eq!(error.status_and_code().1, "invalid_request");
        let error = json_error(JsonPayloadError::Overflow { limit: 10 });
        assert_eq!(error.status_code(), 413);
        let response = error.error_response();
        assert_eq!(
            response.headers().get("content-type").unwrap(),
            "application/json"
        );
    }
}
