//! A panic anywhere in request handling becomes a 500 JSON answer (`internal`), never a
//! dropped connection: the middleware catches the unwinding handler, counts it, and answers.
//! The panic hook writes the one log line (with the request's span, so its request id).

use std::panic::AssertUnwindSafe;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::error::InternalError;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, ResponseError};
use chatkit_actors::text::shorten_for_display;
use futures::FutureExt;

use super::error::ApiError;
use super::metrics::PANICS;
use super::request_id::{self, RequestId};

/// Longest panic message logged: panic messages may quote the text that caused them.
const MAX_LOGGED_MESSAGE_BYTES: usize = 200;

/// Routes panics to the log as one error line instead of the default stderr dump.
pub fn install_hook() {
    std::panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("(no message)");
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        tracing::error!(
            %location,
            message = %shorten_for_display(message, MAX_LOGGED_MESSAGE_BYTES),
            "panic"
        );
    }));
}

pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    // No clone of the request may live across `next.call`: routing needs it unshared. The
    // answer to a panic goes out as an error whose response is ours (with the request id).
    let request_id = req.extensions().get::<RequestId>().cloned();
    match AssertUnwindSafe(next.call(req)).catch_unwind().await {
        Ok(result) => result,
        Err(_panic) => {
            PANICS.inc();
            let mut response = ApiError::Panicked.error_response();
            if let Some(RequestId(id)) = request_id {
                if let Ok(value) = HeaderValue::from_str(&id) {
                    response
                        .headers_mut()
                        .insert(HeaderName::from_static(request_id::HEADER), value);
                }
            }
            Err(InternalError::from_response("request handler panicked", response).into())
        }
    }
}
