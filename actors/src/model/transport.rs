//! The HTTP transport under async-openai: reqwest, with async-openai's own retry layer, and
//! responses that read their last bytes before going away.
//!
//! async-openai stops reading a stream at `data: [DONE]` and drops the response, often just
//! before the end of the body arrives. Over HTTP/1.1 that is harmless, but over HTTP/2 the
//! dropped stream is reset, the end of the body then arrives for a stream the client no longer
//! knows, and after 1,024 of those the client's HTTP/2 library closes the connection that every
//! model stream of the process shares (seen at 10,000 concurrent streams). So a response whose
//! last event was `[DONE]` is read to its end (briefly, in the background) when dropped; one
//! dropped earlier (a cancelled turn) is still aborted at once.
//!
//! With traces on, each request carries the `traceparent` of the model call's span.
//!
//! Each thread asks through its own HTTP client ([`ThreadClients`]): a pooled connection's
//! I/O runs on the thread that opened it, so a request from another arbiter over a shared
//! pool would cross threads (a wake-up) for its request and every chunk of its answer.
//!
//! Streamed answers are asked for here ([`StreamRequests`]) and read by `sse/`; other calls
//! (files, containers, transcriptions) go through async-openai's client over the same
//! transport.

use std::cell::RefCell;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_openai::error::OpenAIError;
use async_openai::middleware::retry::OpenAIRetryLayer;
use async_openai::middleware::HttpRequestFactory;
use bytes::Bytes;
use futures::future::BoxFuture;
use http_body::{Body, Frame, SizeHint};
use tower_layer::Layer;

/// Longest a finished response is read in the background before being dropped anyway.
const FINISH_READING_FOR: Duration = Duration::from_secs(2);
const DONE_EVENT: &[u8] = b"data: [DONE]";
/// The W3C Trace Context header.
pub(crate) const TRACEPARENT: http::HeaderName = http::HeaderName::from_static("traceparent");

/// async-openai's default transport (`ReqwestService` under `OpenAIRetryLayer::default()`),
/// with [`FinishOnDrop`] bodies.
pub(super) type Transport = async_openai::middleware::retry::OpenAIRetry<FinishingService>;

pub(super) fn transport(clients: ThreadClients) -> Transport {
    OpenAIRetryLayer::default().layer(FinishingService { clients })
}

/// One model's HTTP client per thread that uses it, made on first use by `make`.
#[derive(Clone)]
pub(super) struct ThreadClients {
    id: u64,
    make: Arc<dyn Fn() -> reqwest::Client + Send + Sync>,
}

thread_local! {
    /// This thread's clients, by [`ThreadClients::id`] (one per configured model).
    static CLIENTS: RefCell<Vec<(u64, reqwest::Client)>> = const { RefCell::new(Vec::new()) };
}

impl ThreadClients {
    pub fn new(make: impl Fn() -> reqwest::Client + Send + Sync + 'static) -> Self {
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        ThreadClients {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            make: Arc::new(make),
        }
    }

    /// The calling thread's client.
    pub fn current(&self) -> reqwest::Client {
        CLIENTS.with(|clients| {
            let mut clients = clients.borrow_mut();
            if let Some((_, client)) = clients.iter().find(|(id, _)| *id == self.id) {
                return client.clone();
            }
            let client = (self.make)();
            clients.push((self.id, client.clone()));
            client
        })
    }
}

/// Which streaming API a request is for.
#[derive(Clone, Copy, Debug)]
pub(super) enum StreamApi {
    ChatCompletions,
    Responses,
}

/// Asks for streamed answers: async-openai's URLs and headers (`OpenAIConfig`: base URL,
/// key) and its retries (429 and 5xx before the answer starts), over [`Transport`].
#[derive(Clone)]
pub(super) struct StreamRequests {
    transport: Transport,
    chat_url: reqwest::Url,
    responses_url: reqwest::Url,
    headers: http::HeaderMap,
}

impl StreamRequests {
    /// `None` when the configured base URL does not make a URL.
    pub fn new(
        clients: ThreadClients,
        config: &async_openai::config::OpenAIConfig,
    ) -> Option<StreamRequests> {
        use async_openai::config::Config;
        let mut headers = config.headers();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        Some(StreamRequests {
            transport: transport(clients),
            chat_url: reqwest::Url::parse(&config.url("/chat/completions")).ok()?,
            responses_url: reqwest::Url::parse(&config.url("/responses")).ok()?,
            headers,
        })
    }

    /// POSTs `body` (JSON) to `api`; the response once its status says success, else the
    /// failure (a refusal by its status).
    pub async fn post(
        &self,
        api: StreamApi,
        body: Bytes,
    ) -> Result<reqwest::Response, super::ModelError> {
        let url = match api {
            StreamApi::ChatCompletions => self.chat_url.clone(),
            StreamApi::Responses => self.responses_url.clone(),
        };
        let headers = self.headers.clone();
        let request = HttpRequestFactory::new(move || {
            let mut request = reqwest::Request::new(reqwest::Method::POST, url.clone());
            *request.headers_mut() = headers.clone();
            *request.body_mut() = Some(body.clone().into());
            std::future::ready(Ok(request))
        });
        let mut transport = self.transport.clone();
        std::future::poll_fn(|cx| tower_service::Service::poll_ready(&mut transport, cx)).await?;
        let response = tower_service::Service::call(&mut transport, request).await?;
        match response.status() {
            status if status.is_success() => Ok(response),
            status => Err(super::ModelError::Http {
                status: status.as_u16(),
            }),
        }
    }
}

#[derive(Clone)]
pub(super) struct FinishingService {
    clients: ThreadClients,
}

impl tower_service::Service<HttpRequestFactory> for FinishingService {
    type Response = reqwest::Response;
    type Error = OpenAIError;
    type Future = BoxFuture<'static, Result<reqwest::Response, OpenAIError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), OpenAIError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: HttpRequestFactory) -> Self::Future {
        let client = self.clients.current();
        // Called while the model call's span is current (`traced.rs`): the provider's own
        // spans can join the turn's trace.
        let traceparent = crate::trace::traceparent(&tracing::Span::current())
            .and_then(|value| http::HeaderValue::from_str(&value).ok());
        Box::pin(async move {
            let mut request = request.build().await?;
            if let Some(value) = traceparent {
                request.headers_mut().insert(TRACEPARENT, value);
            }
            let response = client
                .execute(request)
                .await
                .map_err(OpenAIError::Reqwest)?;
            let response: http::Response<reqwest::Body> = response.into();
            Ok(response
                .map(|body| reqwest::Body::wrap(FinishOnDrop::new(body)))
                .into())
        })
    }
}

/// A response body that, dropped after the `[DONE]` event but before its end, reads the rest
/// in the background (bounded by [`FINISH_READING_FOR`]).
pub(super) struct FinishOnDrop {
    inner: Option<reqwest::Body>,
    saw_done: bool,
    ended: bool,
}

impl FinishOnDrop {
    fn new(inner: reqwest::Body) -> Self {
        FinishOnDrop {
            inner: Some(inner),
            saw_done: false,
            ended: false,
        }
    }
}

impl Body for FinishOnDrop {
    type Data = Bytes;
    type Error = reqwest::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, reqwest::Error>>> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    if contains(data, DONE_EVENT) {
                        self.saw_done = true;
                    }
                }
            }
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => self.ended = true,
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map(Body::size_hint)
            .unwrap_or_else(|| SizeHint::with_exact(0))
    }
}

impl Drop for FinishOnDrop {
    fn drop(&mut self) {
        let Some(mut body) = self.inner.take() else {
            return;
        };
        if self.ended || !self.saw_done || body.is_end_stream() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            let rest = async {
                while let Some(Ok(_)) =
                    std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
                {
                }
            };
            let _ = tokio::time::timeout(FINISH_READING_FOR, rest).await;
        });
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    // memmem, not a window compared at every offset: this runs over every byte of every
    // answer (the naive search was ≈ 6% of the server's instructions per turn).
    memchr::memmem::find(haystack, needle).is_some()
}

#[cfg(test)]
mod tests {
    use super::contains;

    #[test]
    fn finds_the_done_event_anywhere_in_a_frame() {
        assert!(contains(b"data: {}\n\ndata: [DONE]\n\n", super::DONE_EVENT));
        assert!(!contains(
            b"data: {\"x\":\"[DONE]\"}\n\n",
            super::DONE_EVENT
        ));
    }
}
