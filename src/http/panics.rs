//! A panic anywhere in request handling becomes a 500 JSON answer (`internal`), never a
//! dropped connection: the middleware catches the unwinding handler, counts it, and answers.
//! The panic hook writes the one log line (with the request's span, so its request id).

use std::panic::AssertUnwindSafe;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::ResponseError;
use chatkit_actors::text::shorten_for_display;
use futures::FutureExt;

use super::error::ApiError;
use super::metrics::PANICS;

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
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let request = req.request().clone();
    match AssertUnwindSafe(next.call(req)).catch_unwind().await {
        Ok(result) => result.map(ServiceResponse::map_into_left_body),
        Err(_panic) => {
            PANICS.inc();
            let response = ApiError::Panicked.error_response();
            Ok(ServiceResponse::new(request, response).map_into_right_body())
        }
    }
}
