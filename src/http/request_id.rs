//! Request ids: taken from a well-formed `x-request-id` header or generated, attached to a
//! tracing span that covers the whole request (thread and user ids are added by the handler;
//! tokens never are), and returned in the `x-request-id` response header. With traces on,
//! that span is the trace's HTTP server span (`crate::telemetry::server_span`).

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::HttpMessage;
use tracing::Instrument;

pub const HEADER: &str = "x-request-id";

/// The request's id, in its extensions (for responses built outside the normal path).
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// A client-supplied id is kept when it is short and plain; anything else is replaced.
fn acceptable(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn generate() -> String {
    format!("{:016x}", rand_u64())
}

fn rand_u64() -> u64 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    hasher.finish()
}

pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = req
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| acceptable(v))
        .map(str::to_string)
        .unwrap_or_else(generate);
    let span = crate::telemetry::server_span(&req, &id);
    req.extensions_mut().insert(RequestId(id.clone()));
    let answered = next.call(req).instrument(span.clone()).await;
    let status = match &answered {
        Ok(response) => response.status(),
        Err(error) => error.as_response_error().status_code(),
    };
    crate::telemetry::record_status(&span, status.as_u16());
    let mut response = answered?;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response
            .headers_mut()
            .insert(HeaderName::from_static(HEADER), value);
    }
    Ok(response)
}
