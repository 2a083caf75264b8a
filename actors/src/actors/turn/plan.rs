//! A turn, decided: what the thread actor hands a turn to run (`thread/plan.rs` decides it).

use serde_json::Value;

use crate::config::WidgetActionSpec;
use crate::ids::{ItemId, UserId};
use crate::model::ChatMessage;
use crate::protocol::{InferenceOptions, ThreadItem, ThreadMeta, ThreadStreamEvent, Timestamp};
use crate::store::WriteOp;

/// A widget action (protocol §3.5, §3.6), checked by the engine against the configuration;
/// the actor checks it against the sender widget.
#[derive(Clone, Debug)]
pub(crate) struct WidgetAction {
    pub item_id: ItemId,
    pub action_type: String,
    /// An object, or null.
    pub payload: Value,
    /// The tool the action type maps to, and what follows it.
    pub spec: WidgetActionSpec,
    /// The sender as stored, in case memory does not hold it (older than the window).
    pub stored_sender: Option<ThreadItem>,
}

/// A turn, decided.
#[derive(Debug)]
pub(crate) struct TurnPlan {
    /// Written before anything is sent (thread creation, user message, tool output), fenced
    /// by the lease when the turn runs.
    pub prelude_ops: Vec<WriteOp>,
    /// Sent once `prelude_ops` committed (`thread.created`, the user message's `done`).
    pub prelude_events: Vec<ThreadStreamEvent>,
    /// Items `prelude_ops` store, for the actor's history.
    pub prelude_items: Vec<ThreadItem>,
    /// Item ids `prelude_ops` delete.
    pub removed_ids: Vec<ItemId>,
    /// The model's input: instructions and the history window (attachments as
    /// placeholders, filled in by the turn).
    pub model_input: Vec<ChatMessage>,
    /// The thread's user: only their attachments are read for the model.
    pub owner: UserId,
    /// The model and tool choice of the newest user message in the window (protocol §7.2):
    /// a continuation (client tool output, retry) runs as that message asked.
    pub inference: InferenceOptions,
    /// The newest `created_at` so far: items of the turn sort after it.
    pub last_created_at: Option<Timestamp>,
    /// Set when the thread is untitled and this is its first answer: the metadata and the
    /// text to title it from.
    pub title_from: Option<(ThreadMeta, String)>,
    /// A widget action: the turn calls its tool first (and builds the model's input after).
    pub action: Option<PlannedAction>,
    /// The prelude creates the thread (`thread.created`).
    pub creates_thread: bool,
}

/// A widget action, checked against its sender.
#[derive(Debug)]
pub(crate) struct PlannedAction {
    pub sender: ThreadItem,
    pub action: WidgetAction,
    /// The history window, for the model turn that may follow.
    pub history: Vec<ThreadItem>,
    pub history_limit: usize,
}

/// Puts a committed item in a history window: in place of the item with its id, or at the
/// end (the one way a turn's or an action's items enter a window).
pub(crate) fn put_or_append(history: &mut Vec<ThreadItem>, item: ThreadItem) {
    match history.iter_mut().find(|i| i.id == item.id) {
        Some(existing) => *existing = item,
        None => history.push(item),
    }
}
