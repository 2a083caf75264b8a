//! One turn over HTTP: POST the body, read the SSE answer to its end, and say how it went.
//! The client is hyper's pooled HTTP/1.1 client with TCP_NODELAY (small SSE writes must not
//! wait for delayed ACKs); each generator thread owns one, so its connections live on that
//! thread's runtime.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::sse::{classify_chatkit, classify_openai, ChatKitEvent, EventSplitter, OpenAiEvent};

pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

pub fn build_client() -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(usize::MAX)
        .build(connector)
}

/// Which kind of stream the target speaks.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Protocol {
    /// ChatKit SSE (`POST /chatkit`): complete when the assistant's `thread.item.done` arrived
    /// and the body ended.
    ChatKit,
    /// Chat Completions streaming (`--raw-openai`): complete at `data: [DONE]` and body end.
    OpenAi,
}

/// A finished turn.
#[derive(Debug, Default)]
pub struct TurnOk {
    /// From the intended start to the first text delta (ChatKit) or first chunk (OpenAI).
    pub ttft: Option<Duration>,
    /// From the intended start to the end of the body.
    pub total: Duration,
    pub deltas: u32,
    pub bytes: u64,
    /// The id announced by `thread.created`, for follow-ups.
    pub thread_id: Option<String>,
    /// The client left after the first text delta (the turn is cancelled on the server).
    pub cancelled: bool,
}

/// A failed turn: a short kind used as the error table's key, and a sample message.
#[derive(Debug)]
pub struct TurnErr {
    pub kind: String,
    pub detail: String,
    /// Whether the thread it addressed should be forgotten (404: deleted or never existed).
    pub forget_thread: bool,
}

impl TurnErr {
    fn new(kind: impl Into<String>, detail: impl Into<String>) -> Self {
        TurnErr {
            kind: kind.into(),
            detail: detail.into(),
            forget_thread: false,
        }
    }
}

/// Counts streams whose headers arrived and whose body has not ended; keeps the peak.
#[derive(Default)]
pub struct OpenStreams {
    now: AtomicI64,
    peak: AtomicI64,
}

impl OpenStreams {
    fn open(&self) {
        let n = self.now.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak.fetch_max(n, Ordering::Relaxed);
    }
    fn close(&self) {
        self.now.fetch_sub(1, Ordering::Relaxed);
    }
    pub fn peak(&self) -> i64 {
        self.peak.load(Ordering::Relaxed)
    }
}

struct OpenGuard<'a>(&'a OpenStreams);
impl Drop for OpenGuard<'_> {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// Runs one turn. `start` is the intended start (the arrival time in `--rate` mode), so queueing
/// inside the generator counts against the latency instead of hiding it.
/// One turn to send: its body, how to read the answer, when it was meant to start, and
/// whether the client leaves after the first text delta.
pub struct TurnSpec {
    pub body: Bytes,
    pub protocol: Protocol,
    pub start: Instant,
    pub leave_after_first_delta: bool,
}

pub async fn run_turn(
    client: &HttpClient,
    uri: &Uri,
    token: Option<&HeaderValue>,
    turn: TurnSpec,
    open: &OpenStreams,
) -> Result<TurnOk, TurnErr> {
    let TurnSpec {
        body,
        protocol,
        start,
        leave_after_first_delta,
    } = turn;
    let mut req = Request::builder()
        .method(Method::POST)
        .uri(uri.clone())
        .header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(token) = token {
        req = req.header(AUTHORIZATION, token.clone());
    }
    let req = req
        .body(Full::new(body))
        .map_err(|e| TurnErr::new("transport:request", e.to_string()))?;
    let resp = client.request(req).await.map_err(|e| {
        let kind = if e.is_connect() {
            "transport:connect"
        } else {
            "transport:request"
        };
        TurnErr::new(kind, error_chain(&e))
    })?;
    let status = resp.status();
    let mut body = resp.into_body();
    if status != StatusCode::OK {
        let mut raw = Vec::new();
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(f) => {
                    if let Some(d) = f.data_ref() {
                        if raw.len() < 4096 {
                            raw.extend_from_slice(d);
                        }
                    }
                }
                Err(_) => break,
            }
        }
        let code = serde_json::from_slice::<serde_json::Value>(&raw)
            .ok()
            .and_then(|v| {
                v.pointer("/error/code")
                    .and_then(|c| c.as_str())
                    .map(str::to_owned)
            });
        let kind = match code {
            Some(code) => format!("http:{}:{code}", status.as_u16()),
            None => format!("http:{}", status.as_u16()),
        };
        let mut err = TurnErr::new(
            kind,
            String::from_utf8_lossy(&raw)
                .chars()
                .take(200)
                .collect::<String>(),
        );
        err.forget_thread = status == StatusCode::NOT_FOUND;
        return Err(err);
    }

    open.open();
    let _guard = OpenGuard(open);
    let mut splitter = EventSplitter::default();
    let mut ok = TurnOk::default();
    let mut finished = false; // assistant item done / [DONE]
    let mut inband: Option<String> = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| TurnErr::new("transport:body", error_chain(&e)))?;
        let Some(data) = frame.data_ref() else {
            continue;
        };
        ok.bytes += data.len() as u64;
        splitter.push(data);
        while let Some(event) = splitter.next_event() {
            match protocol {
                Protocol::ChatKit => match classify_chatkit(&event) {
                    ChatKitEvent::TextDelta => {
                        if ok.ttft.is_none() {
                            ok.ttft = Some(start.elapsed());
                        }
                        ok.deltas += 1;
                        if leave_after_first_delta {
                            // Dropping the body closes the connection: the server cancels.
                            ok.total = start.elapsed();
                            ok.cancelled = true;
                            return Ok(ok);
                        }
                    }
                    ChatKitEvent::ThreadCreated { thread_id } => ok.thread_id = Some(thread_id),
                    ChatKitEvent::AssistantDone | ChatKitEvent::ClientToolCall => finished = true,
                    ChatKitEvent::Error { code } => {
                        inband.get_or_insert(code);
                    }
                    ChatKitEvent::OtherItemDone | ChatKitEvent::Other => {}
                },
                Protocol::OpenAi => match classify_openai(&event) {
                    OpenAiEvent::Chunk => {
                        if ok.ttft.is_none() {
                            ok.ttft = Some(start.elapsed());
                        }
                        ok.deltas += 1;
                    }
                    OpenAiEvent::Done => finished = true,
                    OpenAiEvent::Error => {
                        inband.get_or_insert_with(|| "error_chunk".into());
                    }
                },
            }
        }
    }
    ok.total = start.elapsed();
    if let Some(code) = inband {
        return Err(TurnErr::new(
            format!("inband:{code}"),
            "error event in the stream",
        ));
    }
    if splitter.has_partial() {
        return Err(TurnErr::new(
            "stream:truncated_event",
            "body ended inside an event",
        ));
    }
    if !finished {
        let what = match protocol {
            Protocol::ChatKit => "body ended without the assistant's thread.item.done",
            Protocol::OpenAi => "body ended without data: [DONE]",
        };
        return Err(TurnErr::new("stream:incomplete", what));
    }
    Ok(ok)
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        cur = inner.source();
    }
    s
}
