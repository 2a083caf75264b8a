//! `POST /chatkit`: authenticate (before reading the body), read the body within its limits,
//! parse the envelope, dispatch on the op.

use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use bytes::BytesMut;
use chatkit_actors::protocol::{to_json, ChatKitRequest, Operation};
use chatkit_actors::{AttachmentId, Deadline, EngineError, OriginOf, Requester, TurnRequest};
use futures::StreamExt;
use tracing::Instrument;

use super::error::ApiError;
use super::{sse, AppState};
use crate::auth::Caller;

pub async fn chatkit(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let mut op = "-";
    let result = handle(req, payload, &state, &mut op).await;
    let status = match &result {
        Ok(response) => response.status(),
        Err(error) => error.status_and_code().0,
    };
    super::metrics::REQUESTS
        .with_label_values(&[op, status.as_str()])
        .inc();
    result
}

async fn handle(
    req: HttpRequest,
    payload: web::Payload,
    state: &AppState,
    op_name: &mut &'static str,
) -> Result<HttpResponse, ApiError> {
    // One deadline from the request's arrival, for every database wait it makes.
    let deadline = state.engine.request_deadline();
    let caller = super::authenticate(&req, state).await?;
    state.check_rate(&caller)?;
    // Dictation's audio comes in the JSON body: only `input.transcribe` may be that large
    // (checked once the op is known).
    let body_limit = state
        .engine
        .max_transcribe_body_bytes()
        .map_or(state.max_body_bytes, |audio| {
            audio.max(state.max_body_bytes)
        });
    if let Some(length) = super::declared_length(&req) {
        if length > body_limit as u64 {
            return Err(ApiError::PayloadTooLarge(state.max_body_bytes));
        }
    }
    let body = read_body(payload, body_limit, state.body_timeout).await?;
    #[cfg(debug_assertions)]
    fault_injection::panic_if_marked(&body);
    let parsed = ChatKitRequest::parse(&body);
    let is_transcription =
        matches!(&parsed, Ok(r) if matches!(r.op, Operation::InputTranscribe(_)));
    if body.len() > state.max_body_bytes && !is_transcription {
        return Err(ApiError::PayloadTooLarge(state.max_body_bytes));
    }
    let request = parsed?;
    let op = request.op.name();
    *op_name = op;
    let thread_id = request
        .op
        .thread_id()
        .map(|id| id.as_str())
        .unwrap_or("")
        .to_string();
    let span = tracing::info_span!(
        "chatkit",
        op,
        user_id = %caller.user_id,
        thread_id = %thread_id,
        otel.name = tracing::field::Empty,
    );
    if crate::telemetry::traces_on() {
        span.record("otel.name", format!("chatkit {op}"));
    }
    let started = std::time::Instant::now();
    let result = dispatch(state, &req, caller, request.op, deadline)
        .instrument(span.clone())
        .await;
    span.in_scope(|| {
        let status = match &result {
            Ok(response) => response.status().as_u16(),
            Err(error) => error.status_and_code().0.as_u16(),
        };
        // For streams: when the response started (the turn goes on after this line).
        tracing::info!(
            status,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "chatkit request"
        );
    });
    result
}

/// Reads the whole body, refusing more than `limit` bytes or a client slower than `timeout`.
async fn read_body(
    mut payload: web::Payload,
    limit: usize,
    timeout: Duration,
) -> Result<bytes::Bytes, ApiError> {
    let read = async {
        let mut body = BytesMut::new();
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|_| {
                ApiError::BadRequest(chatkit_actors::protocol::RequestError::InvalidJson(
                    "request body could not be read".into(),
                ))
            })?;
            if body.len() + chunk.len() > limit {
                return Err(ApiError::PayloadTooLarge(limit));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    };
    tokio::time::timeout(timeout, read)
        .await
        .map_err(|_| ApiError::BodyTimeout)?
}

fn json(body: Vec<u8>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(body)
}

/// The `{}` body of `threads.delete`, `items.feedback` and `attachments.delete` (exactly two
/// bytes, protocol §3.12).
fn empty_object() -> HttpResponse {
    json(b"{}".to_vec())
}

async fn dispatch(
    state: &AppState,
    req: &HttpRequest,
    caller: Caller,
    op: Operation,
    deadline: Deadline,
) -> Result<HttpResponse, ApiError> {
    let who = Requester {
        user_id: caller.user_id.clone(),
        token: Some(caller.token.clone()),
        deadline,
    };
    // Where the browser reaches us, for attachment URLs: worked out only by the ops that
    // hand some out (a `Host` that is no host name is refused there).
    let origin = || super::attachments::public_origin(req, state).map_err(|_| EngineError::BadHost);
    let op = match TurnRequest::from_operation(op) {
        Ok(turn) => return stream_turn(state, &who, turn, &origin).await,
        Err(op) => *op,
    };
    let engine = &state.engine;
    let user = &who.user_id;
    match op {
        Operation::ThreadsGetById(p) => Ok(json(to_json(
            &engine.get_thread(user, &p.thread_id, &origin()?).await?,
        ))),
        Operation::ThreadsList(p) => Ok(json(to_json(&engine.list_threads(user, &p).await?))),
        Operation::ItemsList(p) => Ok(json(to_json(
            &engine.list_items(user, &p, &origin()?).await?,
        ))),
        Operation::ThreadsUpdate(p) => Ok(json(to_json(
            &engine.rename_thread(&who, &p.thread_id, &p.title).await?,
        ))),
        Operation::ThreadsDelete(p) => {
            engine.delete_thread(&who, &p.thread_id).await?;
            Ok(empty_object())
        }
        Operation::ItemsFeedback(p) => {
            engine.feedback(user, &p).await?;
            Ok(empty_object())
        }
        Operation::AttachmentsCreate(p) => Ok(json(to_json(
            &engine.create_attachment(user, &p, &origin()?).await?,
        ))),
        Operation::AttachmentsDelete(p) => {
            // An id that cannot be ours names nothing: the same answer as a missing one.
            let id = AttachmentId::parse(p.attachment_id)
                .map_err(|_| ApiError::Engine(EngineError::AttachmentNotFound))?;
            engine.delete_attachment(user, &id).await?;
            Ok(empty_object())
        }
        Operation::InputTranscribe(p) => {
            state
                .transcription_limits
                .check_rate(user.as_str())
                .map_err(ApiError::RateLimited)?;
            let text = engine.transcribe(&p).await?;
            Ok(json(to_json(&serde_json::json!({ "text": text }))))
        }
        Operation::ThreadsSyncCustomAction(p) => {
            let updated = engine
                .sync_custom_action(&who, &p.thread_id, p.item_id, p.action)
                .await?;
            // protocol §3.6: `{"updated_item": …}`, or `{}` when nothing was replaced.
            match updated {
                Some(item) => Ok(json(to_json(&serde_json::json!({ "updated_item": item })))),
                None => Ok(empty_object()),
            }
        }
        unsupported => Err(ApiError::Engine(EngineError::Unsupported(
            unsupported.name(),
        ))),
    }
}

/// A streamed operation: the user's open-stream permit, the turn, and its frames relayed
/// as SSE once its input committed.
async fn stream_turn(
    state: &AppState,
    who: &Requester,
    turn: TurnRequest,
    origin: OriginOf<'_>,
) -> Result<HttpResponse, ApiError> {
    let permit = state
        .limits
        .acquire_stream(who.user_id.as_str())
        .map_err(ApiError::RateLimited)?;
    let is_retry = matches!(turn, TurnRequest::RetryAfterItem { .. });
    match state.engine.start_turn(who, turn, origin).await {
        // protocol §3.4: an id that is never found gives an empty stream.
        Err(EngineError::ItemNotFound) if is_retry => Ok(sse::empty()),
        started => Ok(sse::respond(started?, permit)),
    }
}

/// Debug builds only: a body containing the text of `CHATKIT_DEBUG_PANIC_MARKER` panics the
/// handler, so tests can prove that a panic is answered (500 `internal`), counted and logged
/// once, and leaves the process healthy. Release builds do not contain this code.
#[cfg(debug_assertions)]
mod fault_injection {
    use std::sync::LazyLock;

    static MARKER: LazyLock<Option<String>> = LazyLock::new(|| {
        std::env::var("CHATKIT_DEBUG_PANIC_MARKER")
            .ok()
            .filter(|m| !m.is_empty())
    });

    pub fn panic_if_marked(body: &[u8]) {
        if let Some(marker) = MARKER.as_deref() {
            let marker = marker.as_bytes();
            if body.windows(marker.len()).any(|w| w == marker) {
                panic!("fault injection: request body carries the panic marker");
            }
        }
    }
}

#[cfg(test)]
mod future_size {
    fn of<A, B, C, Fut, F: FnOnce(A, B, C) -> Fut>(_: F) -> usize {
        std::mem::size_of::<Fut>()
    }

    /// actix-web boxes each request's handler future: all of it is copied per request (it
    /// was 36 KB before the deadline's wrappers stopped doubling what they wrap).
    #[test]
    fn the_handlers_future_stays_small() {
        let size = of(super::chatkit);
        assert!(size < 8 * 1024, "the handler's future is {size} bytes");
    }
}
