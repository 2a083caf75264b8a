//! The model client: OpenAI-compatible Chat Completions streaming through async-openai, with
//! our own lenient chunk types (the `byot` API), because compatible providers send values the
//! strict types reject (e.g. `finish_reason: ""`).

mod history;
mod wire;

use std::pin::Pin;
use std::time::Duration;

use async_openai::config::OpenAIConfig;
use async_openai::error::OpenAIError;
use async_openai::Client;
use futures::{Stream, StreamExt};

pub use history::{history_messages, HIDDEN_CONTEXT_PREFIX};
pub use wire::{ChatMessage, FunctionSpec, ToolCallRequest, ToolSpec};

/// How to reach the model.
#[derive(Clone)]
pub struct ModelSettings {
    pub base_url: String,
    pub name: String,
    /// From the environment only; never logged (Debug is redacted below).
    pub api_key: Option<String>,
    /// Longest wait for the response headers and for each chunk after that.
    pub timeout: Duration,
    /// Prepended as a system message when not empty.
    pub instructions: String,
}

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

/// One step of a model response.
#[derive(Clone, Debug, PartialEq)]
pub enum ModelEvent {
    TextDelta(String),
    /// A piece of the `index`-th tool call: id and name come first, arguments in pieces.
    ToolCallDelta {
        index: u32,
        id: Option<String>,
        name: Option<String>,
        arguments: String,
    },
    Finished {
        reason: String,
    },
}

pub type ModelStream = Pin<Box<dyn Stream<Item = Result<ModelEvent, ModelError>> + Send>>;

/// A cheaply cloneable client for one configured model.
#[derive(Clone)]
pub struct ModelClient {
    client: Client<OpenAIConfig>,
    settings: std::sync::Arc<ModelSettings>,
}

impl std::fmt::Debug for ModelSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelSettings")
            .field("base_url", &self.base_url)
            .field("name", &self.name)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl ModelClient {
    pub fn new(settings: ModelSettings) -> Self {
        let config = OpenAIConfig::new()
            .with_api_base(settings.base_url.trim_end_matches('/'))
            .with_api_key(settings.api_key.clone().unwrap_or_default());
        ModelClient {
            client: Client::with_config(config),
            settings: std::sync::Arc::new(settings),
        }
    }

    pub fn settings(&self) -> &ModelSettings {
        &self.settings
    }

    /// Starts a streamed completion. Dropping the returned stream aborts the HTTP request.
    pub async fn stream(
        &self,
        messages: &[ChatMessage],
        tools: &[ToolSpec],
    ) -> Result<ModelStream, ModelError> {
        let request = wire::ChatRequest {
            model: &self.settings.name,
            messages,
            stream: true,
            tools: if tools.is_empty() { None } else { Some(tools) },
        };
        let timeout = self.settings.timeout;
        let started = tokio::time::timeout(
            timeout,
            self.client
                .chat()
                .create_stream_byot::<_, wire::Chunk>(request),
        )
        .await
        .map_err(|_| ModelError::Timeout(timeout))?
        .map_err(map_error)?;
        let events = futures::stream::unfold(
            (
                started,
                std::collections::VecDeque::<ModelEvent>::new(),
                false,
            ),
            move |(mut inner, mut queued, finished)| async move {
                loop {
                    if let Some(event) = queued.pop_front() {
                        return Some((Ok(event), (inner, queued, finished)));
                    }
                    if finished {
                        return None;
                    }
                    match tokio::time::timeout(timeout, inner.next()).await {
                        Err(_) => {
                            return Some((Err(ModelError::Timeout(timeout)), (inner, queued, true)))
                        }
                        Ok(None) => return None,
                        Ok(Some(Err(e))) => {
                            return Some((Err(map_stream_error(e)), (inner, queued, true)))
                        }
                        Ok(Some(Ok(chunk))) => chunk.into_events(&mut queued),
                    }
                }
            },
        );
        Ok(Box::pin(events))
    }
}

impl ModelClient {
    /// A whole answer as one string (streamed underneath), for short side requests like titles.
    pub async fn complete(&self, messages: &[ChatMessage]) -> Result<String, ModelError> {
        let mut stream = self.stream(messages, &[]).await?;
        let mut text = String::new();
        while let Some(event) = stream.next().await {
            match event? {
                ModelEvent::TextDelta(delta) => text.push_str(&delta),
                ModelEvent::Finished { .. } => break,
                ModelEvent::ToolCallDelta { .. } => {}
            }
        }
        Ok(text)
    }
}

fn map_error(error: OpenAIError) -> ModelError {
    match error {
        OpenAIError::ApiError(api) => ModelError::Http {
            status: api.status_code.as_u16(),
        },
        OpenAIError::Reqwest(e) => ModelError::Unreachable(e.to_string()),
        OpenAIError::StreamError(e) => classify_stream_error(e.to_string()),
        OpenAIError::JSONDeserialize(e, _) => ModelError::Protocol(e.to_string()),
        other => ModelError::Protocol(other.to_string()),
    }
}

fn map_stream_error(error: OpenAIError) -> ModelError {
    match error {
        OpenAIError::StreamError(e) => classify_stream_error(e.to_string()),
        OpenAIError::JSONDeserialize(e, _) => ModelError::Protocol(e.to_string()),
        OpenAIError::Reqwest(e) => ModelError::Interrupted(e.to_string()),
        other => map_error(other),
    }
}

/// Stream errors carry the HTTP status when the request was refused before streaming.
fn classify_stream_error(text: String) -> ModelError {
    for status in [
        400u16, 401, 403, 404, 408, 409, 422, 429, 500, 502, 503, 504,
    ] {
        if text.contains(&format!("{status}")) && text.to_lowercase().contains("status") {
            return ModelError::Http { status };
        }
    }
    ModelError::Interrupted(text)
}
