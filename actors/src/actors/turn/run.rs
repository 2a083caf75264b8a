//! A turn while it runs (`TurnRun`: what every step of it shares) and how it ended
//! (`Ended`); the steps live in `agent.rs`, `round.rs`, `tools.rs`, `workflow.rs`,
//! `widget_stream.rs` and `action.rs`.

use std::sync::Arc;
use std::time::Instant;

use super::choice::TurnToolChoice;
use super::events::{AnswerInProgress, EventWriter};
use crate::actors::env::{EngineEnv, Lease};
use crate::attachments::generated::ContentLinks;
use crate::ids::{BearerToken, ThreadId, UserId};
use crate::mcp::McpSessions;
use crate::model::ModelClient;
use crate::protocol::{ThreadItem, Timestamp};

/// How the agent part of a turn ended.
pub(super) enum Ended {
    /// Answered (with text, or a pending client tool call).
    Answered,
    /// The client left; `partial` is the answer being streamed, if any.
    Cancelled { partial: Option<AnswerInProgress> },
    /// The model or a tool server failed: one in-band error.
    Failed,
    /// A commit failed: in-band error, and the actor reloads.
    CommitFailed,
    /// A widget action's tool failed: in-band error, nothing written.
    ActionFailed,
}

impl Ended {
    /// The `outcome` label of the turns metric.
    pub(super) fn label(&self) -> &'static str {
        match self {
            Ended::Answered => "answered",
            Ended::Cancelled { .. } => "cancelled",
            Ended::Failed => "failed",
            Ended::CommitFailed => "commit_failed",
            Ended::ActionFailed => "action_failed",
        }
    }
}

/// The state of the agent part of a turn.
pub(super) struct TurnRun<'a> {
    pub env: Arc<EngineEnv>,
    pub thread_id: ThreadId,
    pub writer: EventWriter<'a>,
    /// The newest `created_at` handed out: new items sort after it.
    pub floor: Option<Timestamp>,
    /// Items committed by the turn, for the actor's history.
    pub committed: Vec<ThreadItem>,
    pub mcp: McpSessions,
    pub token: Option<BearerToken>,
    pub lease: Lease,
    pub started: Instant,
    pub first_token_seen: bool,
    /// The model of this turn (the picker's choice, or the default).
    pub model: ModelClient,
    /// The tool menu's choice for this turn, if any.
    pub tool_choice: Option<TurnToolChoice>,
    /// How the files the model makes are named (signed URLs of this server).
    pub links: ContentLinks,
    /// The thread's owner: the files the model makes are theirs.
    pub owner: UserId,
    /// Where a question to the user waits for its answer (`ask.rs`).
    pub questions: super::question_desk::QuestionDesk,
    /// A question was skipped: the turn ends after its tool step.
    pub question_skipped: bool,
}

impl TurnRun<'_> {
    pub(super) fn next_timestamp(&mut self) -> Timestamp {
        let t = Timestamp::now_after(self.floor);
        self.floor = Some(t);
        t
    }
}
