//! The HTTP client of MCP sessions: reqwest as rmcp drives it, plus the W3C `traceparent` of
//! each tool call as a header, so that a tool server's own spans join the turn's trace.
//!
//! A session's requests are sent by rmcp's worker task, not by the turn, so the trace
//! context cannot be read from the current span there: the tool call puts its `traceparent`
//! in the request's `_meta` (where MCP itself propagates trace context), and this client
//! copies it to the HTTP header of the POST that carries the call, next to the bearer token.

use std::collections::HashMap;
use std::sync::Arc;

use futures::stream::BoxStream;
use http::{HeaderName, HeaderValue};
use rmcp::model::{
    ClientJsonRpcMessage, ClientRequest, JsonRpcMessage, MetaObject, RequestMetaObject,
};
use rmcp::transport::streamable_http_client::{
    SseError, StreamableHttpClient, StreamableHttpError, StreamableHttpPostResponse,
    StreamableHttpResponseLimits,
};
use sse_stream::Sse;

/// Where a tool call's trace context rides in its request (`params._meta`).
const TRACEPARENT_META: &str = "traceparent";
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// Runs `opening` (a session being served) in a task of its own, outside the caller's span:
/// rmcp's session task, which outlives the turn that opens it, would otherwise be a child of
/// the turn's span and keep it (and the request's) open, unexported, for as long as the
/// session lives. Dropped, it aborts the task; `None` if the task panicked.
pub(super) async fn detached<F>(opening: F) -> Option<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    struct AbortOnDrop(tokio::task::AbortHandle);
    impl Drop for AbortOnDrop {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    let task = tokio::spawn(opening);
    let _abort = AbortOnDrop(task.abort_handle());
    task.await.ok()
}

/// The `_meta` of a tool call made in the current span (the call's, `turn/invoke.rs`): its
/// `traceparent`, when traces are on.
pub(super) fn trace_meta() -> Option<RequestMetaObject> {
    let traceparent = crate::trace::traceparent(&tracing::Span::current())?;
    let mut meta = serde_json::Map::new();
    meta.insert(TRACEPARENT_META.into(), traceparent.into());
    Some(RequestMetaObject(MetaObject(meta)))
}

/// rmcp's reqwest client, with the tool call's `traceparent` header.
#[derive(Clone)]
pub(super) struct TracedClient(pub reqwest::Client);

/// The `traceparent` a `tools/call` request carries in its `_meta`, if any.
fn traceparent_of(message: &ClientJsonRpcMessage) -> Option<HeaderValue> {
    let JsonRpcMessage::Request(request) = message else {
        return None;
    };
    let ClientRequest::CallToolRequest(call) = &request.request else {
        return None;
    };
    let meta = call.params.meta.as_ref()?;
    let value = meta.0 .0.get(TRACEPARENT_META)?.as_str()?;
    HeaderValue::from_str(value).ok()
}

fn with_traceparent(
    message: &ClientJsonRpcMessage,
    mut headers: HashMap<HeaderName, HeaderValue>,
) -> HashMap<HeaderName, HeaderValue> {
    if let Some(value) = traceparent_of(message) {
        headers.insert(TRACEPARENT, value);
    }
    headers
}

type PostResult = Result<StreamableHttpPostResponse, StreamableHttpError<reqwest::Error>>;
type SseResult =
    Result<BoxStream<'static, Result<Sse, SseError>>, StreamableHttpError<reqwest::Error>>;

impl StreamableHttpClient for TracedClient {
    type Error = reqwest::Error;

    async fn post_message(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> PostResult {
        let headers = with_traceparent(&message, custom_headers);
        self.0
            .post_message(uri, message, session_id, auth_header, headers)
            .await
    }

    async fn post_message_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> PostResult {
        let headers = with_traceparent(&message, custom_headers);
        self.0
            .post_message_with_max_sse_event_size(
                uri,
                message,
                session_id,
                auth_header,
                headers,
                max_sse_event_size,
            )
            .await
    }

    async fn post_message_with_response_limits(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        limits: StreamableHttpResponseLimits,
    ) -> PostResult {
        let headers = with_traceparent(&message, custom_headers);
        self.0
            .post_message_with_response_limits(
                uri,
                message,
                session_id,
                auth_header,
                headers,
                limits,
            )
            .await
    }

    async fn delete_session(
        &self,
        uri: Arc<str>,
        session_id: Arc<str>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> Result<(), StreamableHttpError<reqwest::Error>> {
        self.0
            .delete_session(uri, session_id, auth_header, custom_headers)
            .await
    }

    async fn get_stream(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> SseResult {
        self.0
            .get_stream(uri, session_id, last_event_id, auth_header, custom_headers)
            .await
    }

    async fn get_stream_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> SseResult {
        self.0
            .get_stream_with_max_sse_event_size(
                uri,
                session_id,
                last_event_id,
                auth_header,
                custom_headers,
                max_sse_event_size,
            )
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmcp::model::{CallToolRequestParams, JsonRpcRequest, NumberOrString, Request};

    fn call(meta: Option<&str>) -> ClientJsonRpcMessage {
        let mut params = CallToolRequestParams::new("add_task");
        params.meta = meta.map(|value| {
            let mut map = serde_json::Map::new();
            map.insert(TRACEPARENT_META.into(), value.into());
            RequestMetaObject(MetaObject(map))
        });
        let request = ClientRequest::CallToolRequest(Request::new(params));
        JsonRpcMessage::Request(JsonRpcRequest::new(NumberOrString::Number(1), request))
    }

    #[test]
    fn a_tool_call_s_traceparent_becomes_its_header() {
        let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let headers = with_traceparent(&call(Some(tp)), HashMap::new());
        assert_eq!(headers[&TRACEPARENT], tp);
        assert!(with_traceparent(&call(None), HashMap::new()).is_empty());
    }
}
