//! The edge's error enum and its explicit mapping to HTTP status and error code. Bodies are
//! `{"error":{"code":…,"message":…}}` and never carry internals; those go to the log.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use chatkit_actors::attachments::signing::SignatureError;
use chatkit_actors::protocol::RequestError;
use chatkit_actors::{EngineError, InactiveStatus};
use serde::Serialize;

use crate::auth::AuthError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unauthorized(AuthError),
    #[error("this endpoint needs an admin token")]
    Forbidden,
    #[error("{0}")]
    BadRequest(RequestError),
    #[error("request body exceeds {0} bytes")]
    PayloadTooLarge(usize),
    #[error("request body was not received in time")]
    BodyTimeout,
    #[error("{}; retry after {} s", .0.reason, .0.retry_after_secs)]
    RateLimited(super::limits::Limited),
    #[error("{0}")]
    Engine(EngineError),
    /// The handler panicked (caught by `panics::middleware`).
    #[error("internal error")]
    Panicked,
    /// An upload's `multipart/form-data` body is malformed or has no `file` field.
    #[error("{0}")]
    BadUpload(String),
    /// The method is not served at this path; carries the one that is (`Allow`).
    #[error("method not allowed; use {0}")]
    MethodNotAllowed(&'static str),
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: &'a str,
    message: String,
}

impl ApiError {
    /// Status and machine-readable code of each error.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::BadRequest(RequestError::InvalidJson(_)) => {
                (StatusCode::BAD_REQUEST, "invalid_json")
            }
            ApiError::BadRequest(RequestError::InvalidEnvelope(_)) => {
                (StatusCode::BAD_REQUEST, "invalid_request")
            }
            ApiError::BadRequest(RequestError::UnknownOperation(_)) => {
                (StatusCode::BAD_REQUEST, "unknown_operation")
            }
            ApiError::BadRequest(RequestError::InvalidParams { .. }) => {
                (StatusCode::BAD_REQUEST, "invalid_params")
            }
            ApiError::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::BadUpload(_) => (StatusCode::BAD_REQUEST, "invalid_upload"),
            ApiError::BodyTimeout => (StatusCode::REQUEST_TIMEOUT, "request_timeout"),
            ApiError::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            ApiError::Panicked => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            ApiError::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::Engine(e) => match e {
                EngineError::ThreadNotFound => (StatusCode::NOT_FOUND, "thread_not_found"),
                EngineError::ItemNotFound => (StatusCode::NOT_FOUND, "item_not_found"),
                EngineError::CursorNotFound => (StatusCode::NOT_FOUND, "cursor_not_found"),
                EngineError::ThreadBusy => (StatusCode::CONFLICT, "thread_busy"),
                EngineError::ThreadNotActive { status, .. } => match status {
                    InactiveStatus::Locked => (StatusCode::CONFLICT, "thread_locked"),
                    InactiveStatus::Closed => (StatusCode::CONFLICT, "thread_closed"),
                },
                EngineError::Conflict(_) => (StatusCode::CONFLICT, "invalid_thread_state"),
                EngineError::InvalidInput(_) => (StatusCode::BAD_REQUEST, "invalid_params"),
                EngineError::BadHost => (StatusCode::BAD_REQUEST, "invalid_request"),
                EngineError::Unsupported(_) => (StatusCode::BAD_REQUEST, "unsupported_operation"),
                EngineError::NotAWidget(_) => (StatusCode::BAD_REQUEST, "not_a_widget"),
                EngineError::UnknownAction(_) => (StatusCode::BAD_REQUEST, "unknown_action"),
                EngineError::ActionNotInWidget(_) => {
                    (StatusCode::FORBIDDEN, "action_not_in_widget")
                }
                EngineError::ActionFailed(_) => (StatusCode::BAD_GATEWAY, "action_failed"),
                EngineError::AttachmentNotFound => (StatusCode::NOT_FOUND, "attachment_not_found"),
                EngineError::UnsupportedMediaType(_) => {
                    (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
                }
                EngineError::AttachmentTooLarge(_) => {
                    (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
                }
                EngineError::AlreadyUploaded => (StatusCode::CONFLICT, "already_uploaded"),
                EngineError::UploadInProgress => (StatusCode::CONFLICT, "upload_in_progress"),
                EngineError::InvalidAudio(_) => (StatusCode::BAD_REQUEST, "invalid_audio"),
                EngineError::UploadInterrupted(_) => (StatusCode::BAD_REQUEST, "invalid_upload"),
                EngineError::QuotaExceeded(_) => (StatusCode::PAYLOAD_TOO_LARGE, "quota_exceeded"),
                EngineError::BadSignature(SignatureError::Expired) => {
                    (StatusCode::FORBIDDEN, "link_expired")
                }
                EngineError::BadSignature(SignatureError::Invalid) => {
                    (StatusCode::FORBIDDEN, "invalid_signature")
                }
                EngineError::Unavailable(_) | EngineError::Retired => {
                    (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
                }
                EngineError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            },
        }
    }

    /// The message a client may see.
    fn public_message(&self) -> String {
        match self {
            ApiError::Engine(EngineError::Internal(_)) => "internal error".into(),
            ApiError::Engine(EngineError::Unavailable(_))
            | ApiError::Engine(EngineError::Retired) => {
                "service temporarily unavailable; retry shortly".into()
            }
            other => other.to_string(),
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(error: EngineError) -> Self {
        ApiError::Engine(error)
    }
}

impl From<RequestError> for ApiError {
    fn from(error: RequestError) -> Self {
        ApiError::BadRequest(error)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status_and_code().0
    }

    fn error_response(&self) -> HttpResponse {
        let (status, code) = self.status_and_code();
        match self {
            ApiError::Engine(EngineError::Internal(detail)) => {
                tracing::error!(%detail, "internal error");
            }
            ApiError::Engine(EngineError::Unavailable(detail)) => {
                tracing::warn!(%detail, "dependency unavailable");
            }
            _ => {}
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code,
                message: self.public_message(),
            },
        };
        let mut response = HttpResponse::build(status);
        if status == StatusCode::UNAUTHORIZED {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.insert_header((header::RETRY_AFTER, "1"));
        }
        if let ApiError::MethodNotAllowed(allow) = self {
            response.insert_header((header::ALLOW, *allow));
        }
        if let ApiError::RateLimited(limited) = self {
            response.insert_header((header::RETRY_AFTER, limited.retry_after_secs.to_string()));
        }
        response
            .content_type("application/json")
            .body(serde_json::to_vec(&body).unwrap_or_default())
    }
}
