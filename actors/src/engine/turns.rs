//! Streamed requests (protocol §3.1–§3.5, §3.7): one request type from the edge, one way to a turn.
//! The engine checks what it can before anything is written (the composer's choices, the
//! attachments a message names, a widget action against the configuration), hands the turn
//! to the thread's actor, and answers once the turn's input has committed: the stream it
//! returns holds only frames worth relaying.

use std::time::Duration;

use serde_json::Value;

use super::Engine;
use crate::actors::routing::ToThread;
use crate::actors::thread::{NewMessage, StartTurn, TurnInput};
use crate::actors::turn::{TurnStart, TurnStream};
use crate::attachments::PublicOrigin;
use crate::deadline::Deadline;
use crate::error::EngineError;
use crate::ids::{BearerToken, ItemId, ThreadId, UserId};
use crate::protocol::requests::{CustomAction, Operation, UserMessageInput};
use crate::protocol::{StructuredInputSubmission, ThreadMeta, Timestamp};
use crate::trace::TraceContext;

/// Who asks, and by when the request must be answered.
#[derive(Clone, Debug)]
pub struct Requester {
    pub user_id: UserId,
    /// The caller's token, for tool servers that receive it on their transport.
    pub token: Option<BearerToken>,
    /// Counted from the request's arrival, shared by every database wait it makes.
    pub deadline: Deadline,
}

/// Where the browser reaches this server, for attachment URLs: asked for only by the
/// requests that hand URLs out (a `Host` that is no host name fails only those).
pub type OriginOf<'a> = &'a dyn Fn() -> Result<PublicOrigin, EngineError>;

/// A streamed request, as the engine sees it.
#[derive(Debug)]
pub enum TurnRequest {
    Create {
        input: UserMessageInput,
    },
    AddUserMessage {
        thread_id: ThreadId,
        input: UserMessageInput,
    },
    ClientToolOutput {
        thread_id: ThreadId,
        result: Value,
    },
    RetryAfterItem {
        thread_id: ThreadId,
        item_id: ItemId,
    },
    CustomAction {
        thread_id: ThreadId,
        item_id: Option<ItemId>,
        action: CustomAction,
    },
    StructuredInput {
        thread_id: ThreadId,
        item_id: ItemId,
        submission: StructuredInputSubmission,
    },
}

impl TurnRequest {
    /// The turn an operation starts, or the operation back when it starts none.
    pub fn from_operation(op: Operation) -> Result<TurnRequest, Box<Operation>> {
        Ok(match op {
            Operation::ThreadsCreate(p) => TurnRequest::Create { input: p.input },
            Operation::ThreadsAddUserMessage(p) => TurnRequest::AddUserMessage {
                thread_id: p.thread_id,
                input: p.input,
            },
            Operation::ThreadsAddClientToolOutput(p) => TurnRequest::ClientToolOutput {
                thread_id: p.thread_id,
                result: p.result,
            },
            Operation::ThreadsRetryAfterItem(p) => TurnRequest::RetryAfterItem {
                thread_id: p.thread_id,
                item_id: p.item_id,
            },
            Operation::ThreadsCustomAction(p) => TurnRequest::CustomAction {
                thread_id: p.thread_id,
                item_id: p.item_id,
                action: p.action,
            },
            Operation::ThreadsAddStructuredInput(p) => TurnRequest::StructuredInput {
                thread_id: p.thread_id,
                item_id: p.item_id,
                submission: p.input,
            },
            other => return Err(Box::new(other)),
        })
    }
}

/// How long past its deadline a request waits for its thread's actor, which bounds its own
/// waits by the deadline itself and so answers first (a commit it gave up on is undone or
/// answered on resend, never a duplicate).
pub(super) const ANSWER_GRACE: Duration = Duration::from_millis(250);

/// The thread a turn runs on.
enum TurnThread {
    New(ThreadId, Box<ThreadMeta>),
    Existing(ThreadId),
}

impl Engine {
    /// Starts a streamed turn; answers once its input committed. Errors here mean nothing
    /// was written (or nothing acknowledged, for a commit given up on at the deadline).
    pub async fn start_turn(
        &self,
        who: &Requester,
        request: TurnRequest,
        origin: OriginOf<'_>,
    ) -> Result<TurnStream, EngineError> {
        let start = async {
            let (thread, input) = self.turn_input(who, request, origin).await?;
            let start = StartTurn {
                user_id: who.user_id.clone(),
                token: who.token.clone(),
                deadline: who.deadline,
                trace: TraceContext::current(),
                input,
                links: self.content_links(origin().ok()),
            };
            let TurnStart { accepted, frames } = match thread {
                TurnThread::New(thread_id, meta) => {
                    let to_thread = ToThread {
                        thread_id,
                        new_thread: Some(*meta),
                        message: start,
                    };
                    self.through_registry(to_thread).await?
                }
                TurnThread::Existing(thread_id) => self.to_thread(&thread_id, start).await?,
            };
            match accepted.await {
                Ok(Ok(())) => Ok(frames),
                Ok(Err(error)) => Err(error),
                Err(_) => Err(EngineError::Internal(
                    "the turn ended before its input committed".into(),
                )),
            }
        };
        self.answer_by(who, "starting the turn", start).await
    }

    /// What the turn's actor is given, checked: the composer's choices, the attachments a
    /// message names, a widget action against the configuration.
    async fn turn_input(
        &self,
        who: &Requester,
        request: TurnRequest,
        origin: OriginOf<'_>,
    ) -> Result<(TurnThread, TurnInput), EngineError> {
        let user_id = &who.user_id;
        Ok(match request {
            TurnRequest::Create { input } => {
                let message = self.new_message(user_id, None, input, origin).await?;
                let thread_id = ThreadId::generate();
                let meta = ThreadMeta::new(thread_id.clone(), user_id.clone(), Timestamp::now());
                (
                    TurnThread::New(thread_id, Box::new(meta)),
                    TurnInput::UserMessage(message),
                )
            }
            TurnRequest::AddUserMessage { thread_id, input } => {
                let message = self
                    .new_message(user_id, Some(&thread_id), input, origin)
                    .await?;
                (
                    TurnThread::Existing(thread_id),
                    TurnInput::UserMessage(message),
                )
            }
            TurnRequest::ClientToolOutput { thread_id, result } => (
                TurnThread::Existing(thread_id),
                TurnInput::ClientToolOutput(result),
            ),
            TurnRequest::RetryAfterItem { thread_id, item_id } => (
                TurnThread::Existing(thread_id),
                TurnInput::RetryAfter(item_id),
            ),
            TurnRequest::CustomAction {
                thread_id,
                item_id,
                action,
            } => {
                let action = self.widget_action(&thread_id, item_id, action).await?;
                (
                    TurnThread::Existing(thread_id),
                    TurnInput::Action(Box::new(action)),
                )
            }
            TurnRequest::StructuredInput {
                thread_id,
                item_id,
                submission,
            } => (
                TurnThread::Existing(thread_id),
                TurnInput::StructuredInput {
                    item_id,
                    submission,
                },
            ),
        })
    }

    /// A new message with its choices checked and the attachments it names resolved.
    async fn new_message(
        &self,
        user_id: &UserId,
        thread_id: Option<&ThreadId>,
        input: UserMessageInput,
        origin: OriginOf<'_>,
    ) -> Result<NewMessage, EngineError> {
        self.check_inference(&input.inference_options)?;
        let attachments = if input.attachments.is_empty() {
            Vec::new()
        } else {
            self.message_attachments(user_id, thread_id, &input.attachments, &origin()?)
                .await?
        };
        Ok(NewMessage { input, attachments })
    }
}

#[cfg(test)]
mod future_size {
    use super::*;

    fn of<A, B, C, D, Fut, F: FnOnce(A, B, C, D) -> Fut>(_: F) -> usize {
        std::mem::size_of::<Fut>()
    }

    /// A future that takes a future as an `async fn` argument keeps it twice (the deadline's
    /// wrappers made a turn's start 35 KB, copied on every request).
    #[test]
    fn a_turns_start_stays_small() {
        let size = of(Engine::start_turn);
        assert!(size < 6 * 1024, "start_turn's future is {size} bytes");
    }
}
