//! Relays a turn's event channel as an SSE body (protocol §1.3): each frame is already
//! `data: <json>\n\n`; the body ends when the turn ends. Dropping the body (the client left)
//! drops the receiver, which the turn notices as a cancellation (protocol §8.8).

use actix_web::http::header;
use actix_web::HttpResponse;
use bytes::Bytes;
use chatkit_actors::TurnStream;

use super::error::ApiError;
use super::limits::StreamPermit;

/// Waits for the turn's first frame: an error there means nothing was acknowledged, so it is
/// answered as a JSON error; otherwise the response is a stream starting with that frame.
pub async fn respond(
    mut frames: TurnStream,
    permit: Option<StreamPermit>,
) -> Result<HttpResponse, ApiError> {
    let first = match frames.recv().await {
        Some(Ok(bytes)) => Some(bytes),
        Some(Err(error)) => return Err(ApiError::Engine(error)),
        None => None,
    };
    // The permit lives in the body's state: released when the body ends or the client leaves.
    let rest = futures::stream::unfold((frames, permit), |(mut frames, permit)| async move {
        loop {
            match frames.recv().await? {
                Ok(bytes) => return Some((Ok::<Bytes, actix_web::Error>(bytes), (frames, permit))),
                // Only the first frame may be an error; later ones cannot happen.
                Err(_) => continue,
            }
        }
    });
    let body = futures::StreamExt::chain(
        futures::stream::iter(first.map(Ok::<Bytes, actix_web::Error>)),
        rest,
    );
    Ok(event_stream_response().streaming(body))
}

/// An empty stream (e.g. retry of an unknown item, protocol §3.4).
pub fn empty() -> HttpResponse {
    event_stream_response().body(Bytes::new())
}

fn event_stream_response() -> actix_web::HttpResponseBuilder {
    let mut response = HttpResponse::Ok();
    response
        .content_type("text/event-stream; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("x-accel-buffering", "no"));
    response
}
