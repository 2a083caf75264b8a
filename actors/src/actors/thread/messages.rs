//! The thread actor's messages. Each is answered by `handlers.rs`.

use actix::prelude::*;
use serde_json::Value;

use crate::actors::turn::TurnStart;
pub(crate) use crate::actors::turn::WidgetAction;
use crate::attachments::generated::ContentLinks;
use crate::deadline::Deadline;
use crate::error::EngineError;
use crate::ids::{BearerToken, ItemId, UserId};
use crate::protocol::requests::UserMessageInput;
use crate::protocol::{Attachment, StructuredInputSubmission, ThreadItem, ThreadMeta};
use crate::trace::TraceContext;

/// A new user message: what the client sent, and the attachments it names, checked and
/// resolved to full objects (`engine/attachments.rs`).
#[derive(Clone, Debug)]
pub(crate) struct NewMessage {
    pub input: UserMessageInput,
    pub attachments: Vec<Attachment>,
}

/// What starts a turn.
#[derive(Clone, Debug)]
pub(crate) enum TurnInput {
    UserMessage(NewMessage),
    /// Protocol §3.3: the browser's result for the pending client tool call.
    ClientToolOutput(Value),
    /// Protocol §3.4: drop everything after this user message and answer it again.
    RetryAfter(ItemId),
    /// Protocol §3.5: a widget's action, run by its tool (`specs/widgets.md`).
    Action(Box<WidgetAction>),
    /// Protocol §3.7: the answers to a pending question (`questions.rs`).
    StructuredInput {
        item_id: ItemId,
        submission: StructuredInputSubmission,
    },
}

/// Protocol §3.6: run a widget action's tool and answer with the replaced item, if any.
/// Allowed while a turn streams.
#[derive(Clone, Message)]
#[rtype(result = "Result<Option<ThreadItem>, EngineError>")]
pub(crate) struct SyncAction {
    pub user_id: UserId,
    pub token: Option<BearerToken>,
    pub deadline: Deadline,
    /// The request's span: the action's tool call is its child.
    pub trace: TraceContext,
    pub action: WidgetAction,
}

/// Start a turn; answers with the turn once it started, or why not (before anything was
/// written).
#[derive(Clone, Message)]
#[rtype(result = "Result<TurnStart, EngineError>")]
pub(crate) struct StartTurn {
    pub user_id: UserId,
    /// The caller's token, for tool servers that receive it on their transport.
    pub token: Option<BearerToken>,
    /// The request's deadline: the lease, the load and the input's commit are waited for
    /// until then.
    pub deadline: Deadline,
    /// The request's span: the turn, and the lease taken for it, are its children.
    pub trace: TraceContext,
    pub input: TurnInput,
    /// How the turn names the files the model makes (generated images).
    pub links: ContentLinks,
}

/// Rename the thread (`threads.update`).
#[derive(Clone, Message)]
#[rtype(result = "Result<ThreadMeta, EngineError>")]
pub(crate) struct Rename {
    pub user_id: UserId,
    pub deadline: Deadline,
    pub title: String,
}

/// Delete the thread and its items (`threads.delete`).
#[derive(Clone, Message)]
#[rtype(result = "Result<(), EngineError>")]
pub(crate) struct Delete {
    pub user_id: UserId,
    pub deadline: Deadline,
}

/// Another instance wants this thread: retire (releasing the lease) now, or after the turn.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct YieldToOtherInstance {
    /// The answer to the question the running turn waits on, sent along by the instance
    /// that received it: the turn goes on with it here, then the thread is handed over.
    pub answer: Option<ForwardedAnswer>,
}

/// Retire now, or when the running turn ended (the registry keeps at most `max_live` actors
/// and asks each once).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Passivate;

/// The engine shuts down: retire once the running turn (if any) has ended; answers then.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct RetireForShutdown;

/// An answer sent along to the instance holding its question (`lease.rs`): the question's id
/// and the submission, as the hand-over notification carries them (`<item id> <json>`).
pub(crate) struct ForwardedAnswer {
    pub item_id: ItemId,
    pub submission: StructuredInputSubmission,
}

/// Notifications carry less than 8000 bytes; a longer answer is not sent along.
pub(super) const MAX_FORWARDED_BYTES: usize = 6000;

impl ForwardedAnswer {
    pub fn payload(item_id: &ItemId, submission: &StructuredInputSubmission) -> Option<String> {
        let json = serde_json::to_string(submission).ok()?;
        let payload = format!("{item_id} {json}");
        (payload.len() <= MAX_FORWARDED_BYTES).then_some(payload)
    }

    pub fn from_payload(payload: &str) -> Option<Self> {
        let (item_id, json) = payload.split_once(' ')?;
        Some(ForwardedAnswer {
            item_id: ItemId::parse(item_id).ok()?,
            submission: serde_json::from_str(json).ok()?,
        })
    }
}
