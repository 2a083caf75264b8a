//! The messages between the registry and the thread actors. A request reaches its thread's
//! actor in one message to the registry ([`ToThread`]), which routes it (starting the actor
//! when the thread is not live here), forwards it, and answers with the actor's answer; an
//! actor that retired in between is routed to again. Thread actors tell the registry when
//! they retire and when a new thread's creation was given up on ([`RegistryLink`]).

use actix::prelude::*;

use crate::error::EngineError;
use crate::ids::{ItemId, ThreadId, UserId};
use crate::protocol::ThreadMeta;

/// `message` for the actor of `thread_id`; answered with the actor's answer.
pub(crate) struct ToThread<M> {
    pub thread_id: ThreadId,
    /// The thread is being created now: its actor starts with this metadata, not loaded.
    pub new_thread: Option<ThreadMeta>,
    pub message: M,
}

impl<M> ToThread<M> {
    pub fn existing(thread_id: &ThreadId, message: M) -> Self {
        ToThread {
            thread_id: thread_id.clone(),
            new_thread: None,
            message,
        }
    }
}

impl<M, T> Message for ToThread<M>
where
    M: Message<Result = Result<T, EngineError>>,
    T: 'static,
{
    type Result = Result<T, EngineError>;
}

/// A thread actor retired; the registry forgets it (if it is still the one registered).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Retired {
    pub thread_id: ThreadId,
    pub actor_id: u64,
}

/// The creation that was not acknowledged: the thread and its first message.
#[derive(Clone, Debug)]
pub(crate) struct Unacknowledged {
    pub thread_id: ThreadId,
    pub user_id: UserId,
    pub item_id: ItemId,
}

/// A new thread whose input's commit was given up on: delete it if the commit completes late
/// (the client was told 503 and retries: never a duplicate thread).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct ReapIfCommittedLate(pub Unacknowledged);

/// How a thread actor reaches its registry.
#[derive(Clone)]
pub(crate) struct RegistryLink {
    pub retired: Recipient<Retired>,
    pub reap: Recipient<ReapIfCommittedLate>,
}
