//! Relays a turn's frames as an SSE body (protocol §1.3): each frame is already
//! `data: <json>\n\n`, a burst of them one chunk; the body ends when the turn ends. Dropping
//! the body (the client left) drops the receiver, which the turn notices as a cancellation
//! (protocol §8.8).

use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::http::header;
use actix_web::HttpResponse;
use bytes::Bytes;
use chatkit_actors::TurnStream;

use super::limits::StreamPermit;

/// The turn's frames as an event stream. The permit lives in the body's state: released
/// when the body ends or the client leaves.
pub fn respond(frames: TurnStream, permit: StreamPermit) -> HttpResponse {
    event_stream_response().streaming(Relay {
        frames,
        _permit: permit,
    })
}

/// The body: each poll takes every frame the turn wrote since the last one, as one chunk.
struct Relay {
    frames: TurnStream,
    _permit: StreamPermit,
}

impl futures::Stream for Relay {
    type Item = Result<Bytes, actix_web::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.frames.poll_recv(cx).map(|chunk| chunk.map(Ok))
    }
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
