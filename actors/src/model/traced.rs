//! A model call as a span (the OpenTelemetry GenAI conventions): `chat {model}`, from the
//! request to the end of its stream, with the provider, the model asked for and the one that
//! answered, the finish reason, the tokens the provider reported and the time to the first
//! token. The request is sent inside the span, so its `traceparent` continues the trace
//! (`transport.rs`). Prompt and answer text only with `telemetry.capture_content`; the API
//! key never.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use futures::Stream;
use tracing::field::Empty;
use tracing::Span;

use super::{ChatMessage, ModelError, ModelEvent, ModelSettings, ModelStream};
use crate::config::ModelApi;
use crate::trace;

/// The span of one call to `settings`' model with `messages`.
pub(super) fn call_span(settings: &ModelSettings, messages: &[ChatMessage]) -> Span {
    let span = tracing::debug_span!(
        "chat",
        otel.name = Empty,
        otel.kind = "client",
        gen_ai.operation.name = "chat",
        gen_ai.provider.name = Empty,
        gen_ai.request.model = %settings.name,
        gen_ai.response.model = Empty,
        gen_ai.response.finish_reasons = Empty,
        gen_ai.usage.input_tokens = Empty,
        gen_ai.usage.output_tokens = Empty,
        gen_ai.server.time_to_first_token = Empty,
        gen_ai.input.messages = Empty,
        gen_ai.output.messages = Empty,
        chatkit.model.api = api_name(settings.api),
        server.address = Empty,
        server.port = Empty,
        error.type = Empty,
        otel.status_code = Empty,
    );
    if span.is_disabled() {
        return span;
    }
    span.record("otel.name", format!("chat {}", settings.name));
    if let Ok(url) = url::Url::parse(&settings.base_url) {
        let host = url.host_str().unwrap_or_default();
        span.record("gen_ai.provider.name", provider_name(host));
        span.record("server.address", host);
        if let Some(port) = url.port_or_known_default() {
            span.record("server.port", port);
        }
    }
    if trace::capture_content() {
        if let Ok(input) = serde_json::to_string(messages) {
            span.record("gen_ai.input.messages", input);
        }
    }
    span
}

fn api_name(api: ModelApi) -> &'static str {
    match api {
        ModelApi::ChatCompletions => "chat_completions",
        ModelApi::Responses => "responses",
    }
}

/// `gen_ai.provider.name` for a model server's host: the well-known providers by their
/// conventional names, any other OpenAI-compatible server as `openai_compatible`.
fn provider_name(host: &str) -> &'static str {
    const KNOWN: &[(&str, &str)] = &[
        ("api.openai.com", "openai"),
        (".openai.azure.com", "azure.ai.openai"),
        ("api.groq.com", "groq"),
        ("api.deepseek.com", "deepseek"),
        ("api.mistral.ai", "mistral_ai"),
        ("api.x.ai", "x_ai"),
        ("api.perplexity.ai", "perplexity"),
        ("generativelanguage.googleapis.com", "gcp.gemini"),
    ];
    KNOWN
        .iter()
        .find(|(suffix, _)| host == *suffix || host.ends_with(suffix))
        .map_or("openai_compatible", |(_, name)| name)
}

/// Records a call that failed before or while streaming.
pub(super) fn record_failure(span: &Span, error: &ModelError) {
    let kind = match error {
        ModelError::Http { .. } => "http",
        ModelError::Unreachable(_) => "unreachable",
        ModelError::Interrupted(_) => "interrupted",
        ModelError::Timeout(_) => "timeout",
        ModelError::Protocol(_) => "protocol",
    };
    trace::record_error(span, kind);
}

/// `stream` with what it says recorded on `span`, which ends when the stream is dropped.
pub(super) fn traced(stream: ModelStream, span: Span, started: Instant) -> ModelStream {
    if span.is_disabled() {
        return stream;
    }
    Box::pin(TracedStream {
        inner: stream,
        output: trace::capture_content().then(String::new),
        span,
        started,
        first_token_seen: false,
    })
}

struct TracedStream {
    inner: ModelStream,
    span: Span,
    started: Instant,
    first_token_seen: bool,
    /// The answer's text, when content is captured.
    output: Option<String>,
}

impl TracedStream {
    fn observe(&mut self, event: &ModelEvent) {
        match event {
            ModelEvent::TextDelta(text) => {
                if !self.first_token_seen {
                    self.first_token_seen = true;
                    let seconds = self.started.elapsed().as_secs_f64();
                    self.span
                        .record("gen_ai.server.time_to_first_token", seconds);
                }
                if let Some(output) = &mut self.output {
                    output.push_str(text);
                }
            }
            ModelEvent::ToolCallDelta { .. } | ModelEvent::ReasoningDelta(_)
                if !self.first_token_seen =>
            {
                self.first_token_seen = true;
                let seconds = self.started.elapsed().as_secs_f64();
                self.span
                    .record("gen_ai.server.time_to_first_token", seconds);
            }
            ModelEvent::Usage { input, output } => {
                self.span.record("gen_ai.usage.input_tokens", input);
                self.span.record("gen_ai.usage.output_tokens", output);
            }
            ModelEvent::Finished { reason, model } => {
                self.span
                    .record("gen_ai.response.finish_reasons", reason.as_str());
                if let Some(model) = model {
                    self.span.record("gen_ai.response.model", model.as_str());
                }
            }
            _ => {}
        }
    }
}

impl Stream for TracedStream {
    type Item = Result<ModelEvent, ModelError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.inner.as_mut().poll_next(cx);
        match &polled {
            Poll::Ready(Some(Ok(event))) => self.observe(event),
            Poll::Ready(Some(Err(error))) => record_failure(&self.span, error),
            Poll::Ready(None) | Poll::Pending => {}
        }
        polled
    }
}

impl Drop for TracedStream {
    fn drop(&mut self) {
        if let Some(output) = self.output.take() {
            let messages = serde_json::json!([{"role": "assistant", "content": output}]);
            self.span
                .record("gen_ai.output.messages", messages.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::provider_name;

    #[test]
    fn known_hosts_name_their_provider_and_others_are_openai_compatible() {
        assert_eq!(provider_name("api.openai.com"), "openai");
        assert_eq!(provider_name("eu.openai.azure.com"), "azure.ai.openai");
        assert_eq!(provider_name("127.0.0.1"), "openai_compatible");
        assert_eq!(
            provider_name("api.openai.com.evil.example"),
            "openai_compatible"
        );
    }
}
