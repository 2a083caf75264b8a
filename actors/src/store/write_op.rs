//! The one description of a change to the database (`WriteOp`): what the thread actors and
//! the engine send the persistence actor, what the batch planner groups and the writer runs.

use super::cluster::{FencingToken, LeaseState};
use crate::ids::{ItemId, ThreadId, UserId};
use crate::protocol::{ThreadItem, ThreadMeta, Timestamp};

/// One change to the database. A batch of them from many threads commits together.
#[derive(Clone, Debug)]
pub enum WriteOp {
    InsertThread(ThreadMeta),
    /// Title, status, allowed image domains and private metadata.
    UpdateThread(ThreadMeta),
    /// Insert or replace an item (upsert: protocol §8.5 re-inserts items on `done`).
    PutItem(ItemRecord),
    DeleteItems {
        thread_id: ThreadId,
        item_ids: Vec<ItemId>,
    },
    DeleteThread {
        thread_id: ThreadId,
    },
    /// The first op of every batch a thread actor sends: the write only counts if the actor
    /// still holds the thread's lease (fencing), and it records the thread's state.
    LeaseCheck {
        thread_id: ThreadId,
        instance_id: String,
        fencing: FencingToken,
        state: LeaseState,
    },
    /// The lease of a thread created now (right after its `InsertThread`), in `state`.
    InsertLease {
        thread_id: ThreadId,
        instance_id: String,
        state: LeaseState,
    },
    /// Gives a retiring actor's lease up, if it is still that lease (fencing): batched like
    /// every write, so a retirement costs no transaction and no WAL flush of its own.
    ReleaseLease {
        thread_id: ThreadId,
        instance_id: String,
        fencing: FencingToken,
    },
    /// Deletes every item after this one (retry, protocol §3.4).
    DeleteItemsAfter {
        thread_id: ThreadId,
        item_id: ItemId,
    },
    /// Sets a generated title unless the thread got one meanwhile (a rename wins).
    SetTitleIfUntitled {
        thread_id: ThreadId,
        title: String,
    },
    Feedback {
        thread_id: ThreadId,
        user_id: UserId,
        item_ids: Vec<ItemId>,
        kind: String,
    },
    /// Stamps the user's uploaded attachments with the thread whose message carries them
    /// (protocol §3.1), in the message's transaction.
    LinkAttachments {
        thread_id: ThreadId,
        user_id: UserId,
        attachment_ids: Vec<String>,
    },
}

/// An item ready to store: its wire JSON serialized once.
#[derive(Clone, Debug)]
pub struct ItemRecord {
    pub thread_id: ThreadId,
    pub id: ItemId,
    pub created_at: Timestamp,
    pub kind: &'static str,
    pub body: String,
}

impl ItemRecord {
    /// The row of `item`; its body is the item's exact wire JSON.
    pub fn of(item: &ThreadItem) -> Self {
        ItemRecord {
            thread_id: item.thread_id.clone(),
            id: item.id.clone(),
            created_at: item.created_at,
            kind: item.kind(),
            body: serde_json::to_string(item).expect("items always serialize"),
        }
    }
}

impl WriteOp {
    pub fn put_item(item: &ThreadItem) -> Self {
        WriteOp::PutItem(ItemRecord::of(item))
    }

    /// The thread this op writes.
    pub(crate) fn thread_id(&self) -> &ThreadId {
        match self {
            WriteOp::InsertThread(t) | WriteOp::UpdateThread(t) => &t.id,
            WriteOp::PutItem(r) => &r.thread_id,
            WriteOp::DeleteItems { thread_id, .. }
            | WriteOp::DeleteThread { thread_id }
            | WriteOp::SetTitleIfUntitled { thread_id, .. }
            | WriteOp::DeleteItemsAfter { thread_id, .. }
            | WriteOp::LeaseCheck { thread_id, .. }
            | WriteOp::InsertLease { thread_id, .. }
            | WriteOp::ReleaseLease { thread_id, .. }
            | WriteOp::Feedback { thread_id, .. }
            | WriteOp::LinkAttachments { thread_id, .. } => thread_id,
        }
    }
}
