//! The model client: OpenAI-compatible Chat Completions and Responses streaming, with our own
//! lenient chunk types, because compatible providers send values the strict types reject (e.g.
//! `finish_reason: ""`). Requests go through async-openai's transport (its URLs, headers and
//! retries); the event stream is read by `sse/`.

mod history;
mod hosted_events;
mod pick;
mod responses;
mod responses_request;
mod sse;
mod traced;
mod transcription;
mod transport;
mod wire;

use pick::{pick_model, ModelPick};

use std::pin::Pin;
use std::time::Duration;

use async_openai::config::OpenAIConfig;
use async_openai::error::OpenAIError;
use async_openai::Client;
use futures::{FutureExt, Stream, StreamExt};
use tracing::Instrument;

pub use crate::config::{ModelApi, ModelSettings};
pub use history::history_messages;
pub use hosted_events::{image_mime, image_result, search_summary, HostedEvent, HostedKind};
pub use transcription::{Transcriber, TranscriptionError};
pub use wire::{
    ChatMessage, ContentPart, FileData, FunctionSpec, ImageUrl, ToolCallRequest, ToolSchema,
    ToolSpec, UserContent,
};

/// What can go wrong talking to the model. Messages are for logs; clients see `stream.error`.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("model answered HTTP {status}")]
    Http { status: u16 },
    #[error("model unreachable: {0}")]
    Unreachable(String),
    #[error("model stream interrupted: {0}")]
    Interrupted(String),
    #[error("model timed out after {0:?}")]
    Timeout(Duration),
    #[error("model sent something unexpected: {0}")]
    Protocol(String),
}

impl From<OpenAIError> for ModelError {
    fn from(error: OpenAIError) -> Self {
        map_error(error)
    }
}

/// One step of a model response.
#[derive(Clone, Debug, PartialEq)]
pub enum ModelEvent {
    TextDelta(String),
    /// Reasoning text the model shows (never sent back to it).
    ReasoningDelta(String),
    /// A piece of the `index`-th tool call: id and name come first, arguments in pieces.
    ToolCallDelta {
        index: u32,
        id: Option<String>,
        name: Option<String>,
        arguments: String,
    },
    /// A citation of the text streamed so far (protocol §7.4), already converted.
    Annotation(crate::protocol::Annotation),
    /// An output item the provider wants back on the next call of the turn (Responses:
    /// encrypted reasoning, and hosted tool calls, which may follow a reasoning item).
    ReasoningItem(serde_json::Value),
    /// Tokens the call used, when the provider says (Responses: `response.completed`).
    Usage {
        input: u64,
        output: u64,
    },
    Finished {
        reason: String,
        /// The model that answered, as the provider names it (for the call's span).
        model: Option<String>,
    },
    /// The provider reported a failure inside the stream (never yielded: becomes an error).
    Failed(String),
    /// A step of a tool the provider runs itself (Responses API, `[[hosted_tools]]`).
    Hosted(HostedEvent),
}

pub type ModelStream = Pin<Box<dyn Stream<Item = Result<ModelEvent, ModelError>> + Send>>;

/// The default model and the picker's, by id.
#[derive(Clone)]
pub struct ModelCatalog {
    default: ModelClient,
    /// The picker's ids, in the order of `clients`.
    ids: std::sync::Arc<[String]>,
    clients: std::sync::Arc<[ModelClient]>,
}

/// The model that answers a choice, and whether the choice names a model no picker lists
/// (none is configured: the default answers and the choice is only logged).
pub struct PickedModel<'a> {
    pub client: &'a ModelClient,
    pub unlisted: bool,
}

impl ModelCatalog {
    pub fn new(default: ModelSettings, choices: &[crate::config::ModelChoice]) -> Self {
        ModelCatalog {
            default: ModelClient::new(default),
            ids: choices.iter().map(|c| c.id.clone()).collect(),
            clients: choices
                .iter()
                .map(|c| ModelClient::new(c.settings.clone()))
                .collect(),
        }
    }

    /// The model that answers `inference_options.model` = `id` (protocol §7.2), by
    /// [`pick_model`]; `None` for an id the picker refuses.
    pub fn pick(&self, id: Option<&str>) -> Option<PickedModel<'_>> {
        let (client, unlisted) = match pick_model(id, &self.default.settings.name, &self.ids) {
            ModelPick::Default => (&self.default, false),
            ModelPick::Unlisted => (&self.default, true),
            ModelPick::Choice(index) => (&self.clients[index], false),
            ModelPick::Refused => return None,
        };
        Some(PickedModel { client, unlisted })
    }

    pub fn default_model(&self) -> &ModelClient {
        &self.default
    }
}

/// An HTTP client for the model of `settings`.
fn http_client(settings: &ModelSettings) -> reqwest::Client {
    let mut http = reqwest::Client::builder()
        .tcp_nodelay(true)
        // A dead model server is noticed on idle pooled connections too.
        .tcp_keepalive(Duration::from_secs(30));
    if settings.http2_prior_knowledge {
        http = http
            .http2_prior_knowledge()
            .http2_keep_alive_interval(Duration::from_secs(20))
            .http2_keep_alive_while_idle(true)
            .http2_keep_alive_timeout(settings.timeout);
    }
    // Building fails only when the TLS backend cannot start; async-openai's own default
    // would panic in the same case.
    http.build().expect("the HTTP client for the model starts")
}

/// A cheaply cloneable client for one configured model.
#[derive(Clone)]
pub struct ModelClient {
    client: Client<OpenAIConfig>,
    /// Streamed answers (`None` when the base URL is no URL: every stream fails then).
    streams: Option<transport::StreamRequests>,
    settings: std::sync::Arc<ModelSettings>,
    body_size: std::sync::Arc<BodySize>,
}

/// The size of the last request body, to size the next one's buffer.
#[derive(Default)]
struct BodySize(std::sync::atomic::AtomicUsize);

impl BodySize {
    /// The last size and a quarter more (a thread's next request is a little longer), at least
    /// 1 KiB, at most 1 MiB (a rare huge request does not make every later one reserve that).
    fn hint(&self) -> usize {
        let last = self.0.load(std::sync::atomic::Ordering::Relaxed);
        (last + last / 4).clamp(1024, 1 << 20)
    }

    fn saw(&self, size: usize) {
        self.0.store(size, std::sync::atomic::Ordering::Relaxed);
    }
}

impl ModelClient {
    pub fn new(settings: ModelSettings) -> Self {
        let config = OpenAIConfig::new()
            .with_api_base(settings.base_url.trim_end_matches('/'))
            .with_api_key(settings.api_key.clone().unwrap_or_default());
        let make = {
            let settings = settings.clone();
            move || http_client(&settings)
        };
        let clients = transport::ThreadClients::new(make);
        ModelClient {
            streams: transport::StreamRequests::new(clients.clone(), &config),
            // `build` reuses this thread's HTTP client for building requests (no second
            // client, with its TLS set-up, made only to be replaced); the service executes
            // them on the calling thread's.
            client: Client::build(clients.current(), config)
                .with_http_service(transport::transport(clients)),
            settings: std::sync::Arc::new(settings),
            body_size: std::sync::Arc::default(),
        }
    }

    /// Streams an answer to `messages`, offering `tools` and this model's hosted tools;
    /// `forced` names a tool the model must call (dropped when this model does not offer it).
    /// Dropping the returned stream aborts the HTTP request. The call is a span (`traced.rs`)
    /// from the request to the end of the stream.
    pub async fn stream(
        &self,
        messages: &[ChatMessage],
        tools: &[ToolSpec],
        forced: Option<&str>,
    ) -> Result<ModelStream, ModelError> {
        let span = traced::call_span(&self.settings, messages);
        let started = std::time::Instant::now();
        let opened = self
            .open(messages, tools, &self.settings.hosted_tools, forced)
            .instrument(span.clone())
            .await;
        match opened {
            Ok(stream) => Ok(traced::traced(stream, span, started)),
            Err(error) => {
                traced::record_failure(&span, &error);
                Err(error)
            }
        }
    }

    /// The bytes of a file the code interpreter made (`/containers/{id}/files/{id}/content`),
    /// within the model's timeout.
    pub async fn container_file(
        &self,
        container_id: &str,
        file_id: &str,
    ) -> Result<bytes::Bytes, ModelError> {
        let containers = self.client.containers();
        let files = containers.files(container_id);
        within(self.settings.timeout, files.content(file_id)).await
    }

    /// The hosted tools this model offers (`[[hosted_tools]]`, Responses API only).
    pub fn hosted_tools(&self) -> &[crate::config::HostedTool] {
        &self.settings.hosted_tools
    }

    async fn open(
        &self,
        messages: &[ChatMessage],
        tools: &[ToolSpec],
        hosted: &[crate::config::HostedTool],
        forced: Option<&str>,
    ) -> Result<ModelStream, ModelError> {
        let timeout = self.settings.timeout;
        let forced = forced.filter(|name| {
            let offered = tools.iter().any(|t| t.function().name == *name)
                || hosted.iter().any(|t| t.kind == *name);
            if !offered {
                tracing::warn!(tool = %name, model = %self.settings.name, "the forced tool is not offered to this model; the model chooses");
            }
            offered
        });
        if self.settings.api == ModelApi::Responses {
            let request =
                responses_request::request(&self.settings, messages, tools, hosted, forced);
            let started = self.post_stream(transport::StreamApi::Responses, &request);
            let response = within(timeout, started).await?;
            return Ok(sse::events(response, responses::parse_event, timeout));
        }
        let request = wire::ChatRequest {
            model: &self.settings.name,
            messages,
            stream: true,
            tools: if tools.is_empty() { None } else { Some(tools) },
            tool_choice: forced.map(
                |name| serde_json::json!({ "type": "function", "function": { "name": name } }),
            ),
            reasoning_effort: self.settings.reasoning_effort,
        };
        let started = self.post_stream(transport::StreamApi::ChatCompletions, &request);
        let response = within(timeout, started).await?;
        Ok(sse::events(response, wire::parse_chunk, timeout))
    }

    async fn post_stream(
        &self,
        api: transport::StreamApi,
        request: &impl serde::Serialize,
    ) -> Result<reqwest::Response, ModelError> {
        let Some(streams) = &self.streams else {
            return Err(ModelError::Unreachable(format!(
                "{} is not a URL",
                self.settings.base_url
            )));
        };
        // Sized like the last request (bodies carry the history and the tools: several KiB,
        // grown from serde_json's 128 bytes by five or more copies otherwise).
        let mut body = Vec::with_capacity(self.body_size.hint());
        serde_json::to_writer(&mut body, request)
            .map_err(|e| ModelError::Protocol(format!("cannot encode the request: {e}")))?;
        self.body_size.saw(body.len());
        streams.post(api, body.into()).await
    }
}

/// A started response within `timeout` (the wait for its headers). Not an `async fn` (see
/// `Deadline::scope`).
fn within<T, E: Into<ModelError>>(
    timeout: Duration,
    started: impl std::future::Future<Output = Result<T, E>>,
) -> impl std::future::Future<Output = Result<T, ModelError>> {
    tokio::time::timeout(timeout, started).map(move |timed| {
        timed
            .map_err(|_| ModelError::Timeout(timeout))?
            .map_err(Into::into)
    })
}

impl ModelClient {
    /// A whole answer as one string (streamed underneath), for short side requests like titles
    /// (no tool offered, hosted ones included).
    pub async fn complete(&self, messages: &[ChatMessage]) -> Result<String, ModelError> {
        let mut stream = self.open(messages, &[], &[], None).await?;
        let mut text = String::new();
        while let Some(event) = stream.next().await {
            match event? {
                ModelEvent::TextDelta(delta) => text.push_str(&delta),
                // The stream ends by itself right after a finish (see `stream`); a title
                // has no use for reasoning or tool calls.
                ModelEvent::Finished { .. }
                | ModelEvent::ToolCallDelta { .. }
                | ModelEvent::ReasoningDelta(_)
                | ModelEvent::Annotation(_)
                | ModelEvent::ReasoningItem(_)
                | ModelEvent::Usage { .. }
                | ModelEvent::Hosted(_)
                | ModelEvent::Failed(_) => {}
            }
        }
        Ok(text)
    }
}

/// A failed call, by kind. A refusal before streaming carries its HTTP status in the error's
/// type (async-openai reads the status of every non-success answer); a stream error is the
/// stream breaking off (its text is only logged).
fn map_error(error: OpenAIError) -> ModelError {
    match error {
        OpenAIError::ApiError(api) => ModelError::Http {
            status: api.status_code.as_u16(),
        },
        OpenAIError::Reqwest(e) => ModelError::Unreachable(e.to_string()),
        OpenAIError::StreamError(e) => ModelError::Interrupted(e.to_string()),
        OpenAIError::JSONDeserialize(e, _) => ModelError::Protocol(e.to_string()),
        other => ModelError::Protocol(other.to_string()),
    }
}
