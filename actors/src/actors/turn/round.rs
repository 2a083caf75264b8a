//! One model round: the call (opened while the input committed, or here), its stream read
//! to the end: text streamed as an assistant message, reasoning shown as thoughts, citations
//! announced, tool calls assembled from their pieces, usage counted.

use futures::StreamExt;

use super::events::{begin_answer, AnswerInProgress, WorkflowInProgress};
use super::hosted::HostedRound;
use super::run::{Ended, TurnRun};
use crate::ids::{new_id, prefix};
use crate::metrics::METRICS;
use crate::model::{ChatMessage, HostedEvent, ModelError, ModelEvent, ModelStream, ToolSpec};
use crate::protocol::{Annotation, ThreadItemUpdate, ThreadStreamEvent};

/// The most tool calls one round may ask for (a bound on what a misbehaving model can make
/// us hold).
const MAX_CALLS_PER_ROUND: usize = 128;

/// How one model round ended.
pub(super) enum Round {
    Text(AnswerInProgress),
    /// Text (maybe none), the calls, and reasoning items the provider wants back next call.
    ToolCalls(AnswerInProgress, Vec<RequestedCall>, Vec<serde_json::Value>),
    Ended(Ended),
}

/// A round that asked for tools, for the agent's next step.
pub(super) struct ToolStep {
    pub answer: AnswerInProgress,
    pub calls: Vec<RequestedCall>,
    pub reasoning_items: Vec<serde_json::Value>,
}

/// A tool call the model asked for, assembled from its streamed pieces.
#[derive(Clone, Debug, Default)]
pub(super) struct RequestedCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

/// What a round has gathered so far.
struct RoundSoFar {
    answer: AnswerInProgress,
    calls: Vec<RequestedCall>,
    reasoning_items: Vec<serde_json::Value>,
    hosted: HostedRound,
}

impl TurnRun<'_> {
    /// One model call (`started` already, or started here): streams text as an assistant
    /// message, collects tool calls.
    pub(super) async fn model_round(
        &mut self,
        input: &[ChatMessage],
        specs: &[ToolSpec],
        started: Option<Result<ModelStream, ModelError>>,
        workflow: &mut Option<WorkflowInProgress>,
    ) -> Round {
        let started = match started {
            Some(started) => started,
            None => tokio::select! {
                biased;
                _ = self.writer.cancellation() => return Round::Ended(Ended::Cancelled { partial: None }),
                started = self.model.stream(input, specs, None) => started,
            },
        };
        let mut stream = match started {
            Ok(stream) => stream,
            Err(error) => {
                log_model_error(&error);
                return Round::Ended(Ended::Failed);
            }
        };
        let mut round = RoundSoFar {
            answer: AnswerInProgress::new(&self.thread_id),
            calls: Vec::new(),
            reasoning_items: Vec::new(),
            hosted: HostedRound::default(),
        };
        loop {
            let next = tokio::select! {
                biased;
                _ = self.writer.cancellation() => return Round::Ended(Ended::Cancelled { partial: Some(round.answer) }),
                next = stream.next() => next,
            };
            let event = match next {
                None => break,
                Some(Ok(event)) => event,
                Some(Err(error)) => {
                    log_model_error(&error);
                    round.hosted.failed();
                    return Round::Ended(Ended::Failed);
                }
            };
            if let Err(ended) = self.on_model_event(event, &mut round, workflow).await {
                round.hosted.failed();
                return Round::Ended(ended);
            }
            if self.writer.cancelled() {
                return Round::Ended(Ended::Cancelled {
                    partial: Some(round.answer),
                });
            }
        }
        self.end_round(round).await
    }

    /// Shows or gathers one event of the model's stream.
    async fn on_model_event(
        &mut self,
        event: ModelEvent,
        round: &mut RoundSoFar,
        workflow: &mut Option<WorkflowInProgress>,
    ) -> Result<(), Ended> {
        match event {
            // The stream ends right after (it reads the body to its end first).
            ModelEvent::Finished { .. } => {}
            ModelEvent::ReasoningDelta(delta) => self.show_reasoning(workflow, &delta).await?,
            ModelEvent::ReasoningItem(item) => round.reasoning_items.push(item),
            ModelEvent::Usage { input, output } => {
                let tokens = &METRICS.model_tokens;
                tokens.with_label_values(&["input"]).inc_by(input);
                tokens.with_label_values(&["output"]).inc_by(output);
            }
            ModelEvent::Annotation(annotation) => self.show_annotation(annotation, round).await,
            ModelEvent::Failed(_) => {}
            ModelEvent::Hosted(HostedEvent::ContainerFile {
                container_id,
                file_id,
                filename,
                index,
            }) => {
                let annotation = self
                    .container_file_source(&container_id, &file_id, &filename, index)
                    .await;
                self.show_annotation(annotation, round).await;
            }
            ModelEvent::Hosted(event) => self.on_hosted(event, &mut round.hosted, workflow).await?,
            ModelEvent::TextDelta(delta) => self.show_text(delta, round, workflow).await?,
            ModelEvent::ToolCallDelta {
                index,
                id,
                name,
                arguments,
            } => {
                let index = index as usize;
                if index >= MAX_CALLS_PER_ROUND {
                    return Ok(());
                }
                if round.calls.len() <= index {
                    round.calls.resize(index + 1, RequestedCall::default());
                }
                let call = &mut round.calls[index];
                if let Some(id) = id {
                    call.id = id;
                }
                if let Some(name) = name {
                    call.name = name;
                }
                call.arguments.push_str(&arguments);
            }
        }
        Ok(())
    }

    /// A citation of the text streamed so far (protocol §8.3); none before the answer starts.
    async fn show_annotation(&mut self, annotation: Annotation, round: &mut RoundSoFar) {
        if !round.answer.started {
            return;
        }
        let answer = &mut round.answer;
        let annotation_index = answer.annotations.len();
        answer.annotations.push(annotation.clone());
        let event = ThreadStreamEvent::ItemUpdated {
            item_id: answer.id.clone(),
            update: ThreadItemUpdate::AnnotationAdded {
                content_index: 0,
                annotation_index,
                annotation,
            },
        };
        self.writer.send(&event).await;
    }

    /// A piece of the answer: the message starts with the first (closing a workflow first,
    /// protocol §8.5), then each piece is a `text_delta`.
    async fn show_text(
        &mut self,
        delta: String,
        round: &mut RoundSoFar,
        workflow: &mut Option<WorkflowInProgress>,
    ) -> Result<(), Ended> {
        if !round.answer.started {
            self.close_workflow(workflow).await?;
            round.answer.created_at = self.next_timestamp();
            begin_answer(&mut self.writer, &mut round.answer).await;
        }
        if !self.first_token_seen {
            self.first_token_seen = true;
            METRICS
                .time_to_first_token_seconds
                .observe(self.started.elapsed().as_secs_f64());
        }
        round.answer.text.push_str(&delta);
        self.writer.send_text_delta(&round.answer.id, &delta).await;
        Ok(())
    }

    /// The round's end: its tool calls (named ones, each with an id), or its text (an empty
    /// answer still starts its message).
    async fn end_round(&mut self, round: RoundSoFar) -> Round {
        let RoundSoFar {
            mut answer,
            mut calls,
            reasoning_items,
            mut hosted,
        } = round;
        self.end_hosted(&mut hosted).await;
        calls.retain(|c| !c.name.is_empty());
        for call in &mut calls {
            if call.id.is_empty() {
                call.id = new_id(prefix::TOOL_CALL);
            }
        }
        if !calls.is_empty() {
            return Round::ToolCalls(answer, calls, reasoning_items);
        }
        if !answer.started {
            answer.created_at = self.next_timestamp();
            begin_answer(&mut self.writer, &mut answer).await;
        }
        Round::Text(answer)
    }
}

/// Counts a failed model call by kind and logs it.
pub(super) fn log_model_error(error: &ModelError) {
    let kind = match error {
        ModelError::Http { .. } => "http",
        ModelError::Unreachable(_) => "unreachable",
        ModelError::Interrupted(_) => "interrupted",
        ModelError::Timeout(_) => "timeout",
        ModelError::Protocol(_) => "protocol",
    };
    METRICS.model_errors.with_label_values(&[kind]).inc();
    tracing::warn!(%error, "model call failed");
}
