//! One turn of a thread: commit the input, run the agent (model rounds and tool calls),
//! stream everything as ChatKit events, commit what is announced, and handle the client
//! leaving (protocol §8.8) or a dependency failing (protocol §8.9).
//!
//! A turn runs as a future on its thread actor's context; it owns snapshots of what it needs
//! (and, for its duration, the actor's MCP sessions) and reports back a [`TurnOutcome`].
//!
//! - `agent.rs` — the model rounds and the tool loop, and committing what they produce.
//! - `tools.rs` — server tool calls through MCP, shown as configured, and their widgets.
//! - `action.rs` — a widget action: its tool, the replaced widget, the model's answer.
//! - `events.rs` — the event writer and the items being streamed.
//! - `hosted.rs` — the provider's hosted tools: generated images, search and code steps.
//! - `titles.rs` — the thread's title after its first answer.

mod action;
mod agent;
mod ask;
mod ask_user;
mod choice;
mod elicit;
mod events;
mod hosted;
mod hosted_tasks;
mod invoke;
mod plan;
mod question_desk;
mod round;
mod run;
mod titles;
mod tools;
mod widget_stream;
mod workflow;

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::oneshot;

use crate::actors::env::{EngineEnv, Lease};
use crate::attachments::generated::ContentLinks;
use crate::attachments::model_input::{has_attachments, put_in_place};
use crate::config::{ToolChoiceMode, ToolChoiceSpec};
use crate::deadline::Deadline;
use crate::error::EngineError;
use crate::ids::{prefix, BearerToken, ItemId, ThreadId, UserId};
use crate::mcp::McpSessions;
use crate::metrics::METRICS;
use crate::model::ChatMessage;
use crate::protocol::{
    ItemBody, SdkHiddenContext, StreamOptions, ThreadItem, ThreadStreamEvent,
    CANCELLED_STREAM_CONTEXT,
};
use crate::store::cluster::LeaseState;
use crate::store::WriteOp;

pub(crate) use action::run_sync_action;
use choice::TurnToolChoice;
use events::{AnswerInProgress, EventWriter};
pub(crate) use plan::{put_or_append, PlannedAction, TurnPlan, WidgetAction};
pub(crate) use question_desk::{AnswerDelivery, QuestionDesk, Resume, SkipReason};
use run::{Ended, TurnRun};
use titles::save_title;

/// What the client reads when a widget action's tool failed (details are logged).
pub(crate) const ACTION_FAILED: &str = "The action could not be completed.";

/// What the HTTP layer relays: the turn's SSE frames, once its input has committed.
pub type TurnStream = crate::frames::FrameReceiver;

/// A turn that started: whether its input committed (answered once, before any frame is
/// worth relaying: an error there means nothing was acknowledged), and its frames.
pub(crate) struct TurnStart {
    pub accepted: oneshot::Receiver<Result<(), EngineError>>,
    pub frames: TurnStream,
}

/// Everything a turn needs, prepared by the thread actor.
pub(crate) struct TurnJob {
    pub env: Arc<EngineEnv>,
    pub thread_id: ThreadId,
    /// What to write, announce and send the model (`thread/plan.rs`).
    pub plan: TurnPlan,
    pub events: crate::frames::FrameSender,
    /// Told once whether the input committed (before the first frame).
    pub accepted: oneshot::Sender<Result<(), EngineError>>,
    /// The request's deadline: the input's commit is waited for until then.
    pub deadline: Deadline,
    /// The caller's token, for tool servers that receive it on their transport.
    pub token: Option<BearerToken>,
    /// How the turn names the files the model makes (generated images).
    pub links: ContentLinks,
    /// The actor's MCP sessions, lent for the turn.
    pub mcp: McpSessions,
    /// The thread's lease: every write of the turn is fenced with it.
    pub lease: Lease,
    /// Shared with the thread actor: the question the turn waits on, if any.
    pub questions: QuestionDesk,
}

/// How a turn ended, for its thread actor to apply.
pub(crate) struct TurnOutcome {
    /// The actor's MCP sessions, handed back.
    pub mcp: McpSessions,
    pub end: TurnEnd,
}

pub(crate) enum TurnEnd {
    /// The input did not commit (in time): nothing was acknowledged, and memory may disagree
    /// with Postgres. For a new thread, its first item's id, for the actor to come back for
    /// if the commit completes late.
    InputRefused { new_thread_item: Option<ItemId> },
    /// The input committed and the turn ran.
    Ran {
        changes: TurnChanges,
        after: AfterTurn,
    },
}

/// What a turn committed, for the actor's memory.
#[derive(Default)]
pub(crate) struct TurnChanges {
    /// Committed items, in order (new ones appended, existing ids replaced).
    pub committed: Vec<ThreadItem>,
    pub removed_ids: Vec<ItemId>,
    /// A generated title that was saved.
    pub title: Option<String>,
}

/// The thread's state once a turn ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AfterTurn {
    /// The turn's last write marked the thread idle again.
    Idle,
    /// The cluster view still shows the thread streaming: mark it idle.
    MarkIdle,
    /// A commit failed: memory may disagree with Postgres (or the lease was lost): reload.
    Reload,
}

/// Runs one turn to its end. Never panics on purpose; the actor catches it if it does.
pub(crate) async fn run_turn(job: TurnJob) -> TurnOutcome {
    let _in_flight = InFlight::enter();
    let started = Instant::now();
    let TurnJob {
        env,
        thread_id,
        plan,
        events: tx,
        accepted,
        deadline,
        token,
        links,
        mcp,
        lease,
        questions,
    } = job;
    let (model, tool_choice) = model_and_tool_choice(&env, &plan.inference);
    let mut run = TurnRun {
        env: env.clone(),
        thread_id,
        writer: EventWriter::new(tx, env.settings.on_disconnect, env.stopping.clone()),
        floor: plan.last_created_at,
        committed: Vec::new(),
        mcp,
        token,
        lease,
        started,
        first_token_seen: false,
        model,
        tool_choice,
        links,
        owner: plan.owner.clone(),
        questions,
        question_skipped: false,
    };
    let title_from = plan.title_from;
    let mut changes = TurnChanges::default();
    let ended = if let Some(action) = plan.action {
        // Nothing is written before the tool answers (protocol §3.5: stream_options first).
        let _ = accepted.send(Ok(()));
        run.send_stream_options().await;
        // Boxed: this rarer path's future (≈ 20 KB) would otherwise size every turn's.
        Box::pin(run.widget_action(action, &env.settings.model.instructions)).await
    } else {
        let input = TurnInputParts {
            ops: plan.prelude_ops,
            events: plan.prelude_events,
            model_input: plan.model_input,
            owner: plan.owner,
        };
        match run.commit_input_and_answer(input, accepted, deadline).await {
            Ok(ended) => {
                changes.committed = plan.prelude_items;
                changes.removed_ids = plan.removed_ids;
                ended
            }
            Err(()) => {
                let new_thread_item = plan
                    .creates_thread
                    .then(|| plan.prelude_items.first().map(|item| item.id.clone()))
                    .flatten();
                return TurnOutcome {
                    mcp: run.mcp,
                    end: TurnEnd::InputRefused { new_thread_item },
                };
            }
        }
    };
    METRICS.turns.with_label_values(&[ended.label()]).inc();
    crate::trace::record_turn_outcome(ended.label());
    let after = run.end(ended, title_from, &mut changes.title).await;
    changes.committed.extend(std::mem::take(&mut run.committed));
    METRICS
        .turn_seconds
        .observe(started.elapsed().as_secs_f64());
    TurnOutcome {
        mcp: run.mcp,
        end: TurnEnd::Ran { changes, after },
    }
}

/// What a message turn commits first and what the model is sent.
struct TurnInputParts {
    ops: Vec<WriteOp>,
    events: Vec<ThreadStreamEvent>,
    model_input: Vec<ChatMessage>,
    owner: UserId,
}

/// The turn's model (the picker's choice, validated when the message arrived; one removed
/// from the configuration since falls back to the default) and tool choice.
fn model_and_tool_choice(
    env: &EngineEnv,
    inference: &crate::protocol::InferenceOptions,
) -> (crate::model::ModelClient, Option<TurnToolChoice>) {
    let model = env
        .models
        .pick(inference.model.as_deref())
        .map_or_else(|| env.models.default_model(), |picked| picked.client)
        .clone();
    let tool_choice = inference
        .tool_choice
        .as_ref()
        .and_then(|choice| turn_tool_choice(&env.settings.tool_choices, &choice.id));
    (model, tool_choice)
}

impl TurnRun<'_> {
    /// Commits the input while the tools are listed and the first model call opens (the
    /// model's time to first byte overlaps the commit); tells `accepted` whether it committed,
    /// then streams the input's events and the answer. The model's stream is read only after
    /// the input's events went out, so no model text precedes `thread.item.done` of the
    /// input. `Err` when the input did not commit by the `deadline` (nothing acknowledged).
    async fn commit_input_and_answer(
        &mut self,
        input: TurnInputParts,
        accepted: oneshot::Sender<Result<(), EngineError>>,
        deadline: Deadline,
    ) -> Result<Ended, ()> {
        let TurnInputParts {
            ops,
            events,
            mut model_input,
            owner,
        } = input;
        if let Some(TurnToolChoice::Menu(ToolChoiceMode::Profile {
            instructions: Some(instructions),
            ..
        })) = &self.tool_choice
        {
            with_instructions(&mut model_input, instructions);
        }
        let env = self.env.clone();
        let lease = self.lease.clone();
        let commit = async {
            if ops.is_empty() {
                return Ok(());
            }
            let commit = env.persist_as(&lease, LeaseState::Streaming, ops);
            deadline.bound("committing the input", commit).await
        };
        let thread_id = self.thread_id.clone();
        let head = async {
            // Attachments' bytes are read while the input commits too.
            if has_attachments(&model_input) {
                let settings = &env.settings.attachments;
                if let Err(error) =
                    put_in_place(&env.store, owner.as_str(), settings, &mut model_input).await
                {
                    tracing::warn!(%thread_id, %error, "could not read the attachments for the model");
                    return Err(Ended::Failed);
                }
            }
            self.open_first_round(&mut model_input).await
        };
        let (committed, head) = tokio::join!(commit, head);
        if let Err(error) = committed {
            // Dropping `head` aborts the model call; nothing was acknowledged, so the edge
            // answers with a JSON error, not a stream.
            drop(head);
            tracing::warn!(%thread_id, %error, "could not commit the turn's input");
            let _ = accepted.send(Err(error));
            METRICS.turns.with_label_values(&["rejected"]).inc();
            crate::trace::record_turn_outcome("rejected");
            return Err(());
        }
        let _ = accepted.send(Ok(()));
        for event in &events {
            self.writer.send(event).await;
        }
        self.send_stream_options().await;
        Ok(match head {
            Err(ended) => ended,
            Ok(_) if self.writer.cancelled() => Ended::Cancelled { partial: None },
            Ok(head) => self.agent(model_input, head).await,
        })
    }

    async fn send_stream_options(&mut self) {
        let stream_options = StreamOptions {
            allow_cancel: self.env.settings.allow_cancel,
        };
        self.writer
            .send(&ThreadStreamEvent::StreamOptions { stream_options })
            .await;
    }

    /// The end of a turn that ran (protocol §8.8, §8.9): the title after a first answer,
    /// the in-band error of a failure, what a cancellation stores. Answers what the thread's
    /// state is then.
    async fn end(
        &mut self,
        ended: Ended,
        title_from: Option<(crate::protocol::ThreadMeta, String)>,
        title: &mut Option<String>,
    ) -> AfterTurn {
        match ended {
            Ended::Answered => {
                if let Some((meta, text)) = title_from {
                    *title =
                        save_title(&self.env, &self.lease, meta, &text, &mut self.writer).await;
                }
                AfterTurn::Idle
            }
            Ended::Failed => {
                self.writer
                    .send(&ThreadStreamEvent::stream_error(true))
                    .await;
                AfterTurn::MarkIdle
            }
            Ended::CommitFailed => {
                self.writer
                    .send(&ThreadStreamEvent::stream_error(true))
                    .await;
                AfterTurn::Reload
            }
            Ended::ActionFailed => {
                let event = ThreadStreamEvent::custom_error(ACTION_FAILED, true);
                self.writer.send(&event).await;
                AfterTurn::MarkIdle
            }
            Ended::Cancelled { partial } => match self.store_cancelled(partial).await {
                true => AfterTurn::Idle,
                false => AfterTurn::Reload,
            },
        }
    }
}

impl TurnRun<'_> {
    /// Protocol §8.8: the client left. A non-empty partial answer is kept, and always the
    /// hidden marker that tells the model its previous answer was cut. False if the write
    /// failed.
    async fn store_cancelled(&mut self, partial: Option<AnswerInProgress>) -> bool {
        let mut items = Vec::new();
        if let Some(answer) = partial.filter(|a| a.started && !a.text.trim().is_empty()) {
            items.push(answer.finish());
        }
        items.push(ThreadItem {
            id: ItemId::generate(prefix::SDK_HIDDEN_CONTEXT),
            thread_id: self.thread_id.clone(),
            created_at: self.next_timestamp(),
            body: ItemBody::SdkHiddenContext(SdkHiddenContext {
                content: CANCELLED_STREAM_CONTEXT.to_string(),
            }),
        });
        let ops = items.iter().map(WriteOp::put_item).collect();
        tracing::debug!(thread_id = %self.thread_id, "client left; turn cancelled");
        match self
            .env
            .persist_as(&self.lease, LeaseState::Idle, ops)
            .await
        {
            Ok(()) => {
                self.committed.extend(items);
                true
            }
            Err(error) => {
                tracing::warn!(thread_id = %self.thread_id, %error, "could not store the cancelled answer");
                false
            }
        }
    }
}

/// What the turn does with the composer's tool choice `id`: the menu's entry when a menu is
/// configured (an id it lost since the message was checked: nothing), else the tool it names.
fn turn_tool_choice(menu: &[ToolChoiceSpec], id: &str) -> Option<TurnToolChoice> {
    if menu.is_empty() {
        return Some(TurnToolChoice::Named(id.to_string()));
    }
    menu.iter()
        .find(|spec| spec.id == id)
        .map(|spec| TurnToolChoice::Menu(spec.mode.clone()))
}

/// Replaces the instructions (the leading system message) of a model input.
fn with_instructions(input: &mut Vec<ChatMessage>, instructions: &str) {
    let system = ChatMessage::System {
        content: instructions.to_string(),
    };
    match input.first_mut() {
        Some(first @ ChatMessage::System { .. }) => *first = system,
        _ => input.insert(0, system),
    }
}

/// Counts a running turn for as long as it lives (panics included).
struct InFlight;

impl InFlight {
    fn enter() -> Self {
        METRICS.turns_in_flight.inc();
        InFlight
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        METRICS.turns_in_flight.dec();
    }
}

#[cfg(test)]
mod future_size_tests;
