//! Questions to the user (protocol §3.7, §8.12), from the model's `ask_user` tool or an MCP
//! tool's elicitation. The turn commits a pending `structured_input` item, ends its stream
//! and waits — the tool call staying open — until the thread actor hands it the answer with
//! the answering request's stream, or skips the question (expired after
//! `agent.ask_timeout_secs`, superseded by a new message, or the actor retiring). A skipped
//! question is stored skipped and ends the turn after its tool step: the model reads it in
//! the history of the next turn (`structured_input::model_text`).

use std::sync::Arc;

use tokio::sync::mpsc;

use super::events::EventWriter;
use super::question_desk::{AnswerDelivery, QuestionDesk, Resume, SkipReason};
use super::run::{Ended, TurnRun};
use crate::actors::env::{EngineEnv, Lease};
use crate::ids::{prefix, ItemId, ThreadId};
use crate::protocol::structured_input::skip_all;
use crate::protocol::{
    ItemBody, StreamOptions, StructuredInput, StructuredInputItem, StructuredInputStatus,
    ThreadItem, ThreadStreamEvent, Timestamp,
};
use crate::store::cluster::LeaseState;
use crate::store::WriteOp;

/// What asking needs of a running turn: disjoint borrows, so a question can be asked while
/// the turn's tool calls (which borrow its MCP sessions) run.
pub(super) struct Asker<'r, 'w> {
    pub writer: &'r mut EventWriter<'w>,
    pub env: &'r Arc<EngineEnv>,
    pub lease: &'r Lease,
    pub thread_id: &'r ThreadId,
    pub floor: &'r mut Option<Timestamp>,
    pub committed: &'r mut Vec<ThreadItem>,
    pub desk: &'r QuestionDesk,
    /// Set when a question was skipped: the turn ends after its tool step.
    pub skipped: &'r mut bool,
}

/// An [`Asker`] of a running turn `$run`, borrowing only the fields it needs (usable while
/// other fields, such as the MCP sessions, are borrowed).
macro_rules! asker {
    ($run:expr) => {
        $crate::actors::turn::ask::Asker {
            writer: &mut $run.writer,
            env: &$run.env,
            lease: &$run.lease,
            thread_id: &$run.thread_id,
            floor: &mut $run.floor,
            committed: &mut $run.committed,
            desk: &$run.questions,
            skipped: &mut $run.question_skipped,
        }
    };
}
pub(super) use asker;

impl<'w> TurnRun<'w> {
    pub(super) fn asker(&mut self) -> Asker<'_, 'w> {
        asker!(self)
    }
}

impl Asker<'_, '_> {
    /// Asks `inputs` (with `notice` shown first, when asking again) and waits for the answer:
    /// the item answered, or skipped. `Err` when a commit failed.
    pub async fn ask(
        &mut self,
        inputs: Vec<StructuredInput>,
        notice: Option<String>,
    ) -> Result<StructuredInputItem, Ended> {
        if let Some(message) = notice {
            let event = ThreadStreamEvent::Notice {
                level: crate::protocol::events::NoticeLevel::Warning,
                message,
                title: None,
            };
            self.writer.send(&event).await;
        }
        let created_at = Timestamp::now_after(*self.floor);
        *self.floor = Some(created_at);
        let item = ThreadItem {
            id: ItemId::generate(prefix::MESSAGE),
            thread_id: self.thread_id.clone(),
            created_at,
            body: ItemBody::StructuredInput(StructuredInputItem {
                status: StructuredInputStatus::Pending,
                inputs,
            }),
        };
        // The thread waits for the user, not for a stream: idle in the cluster view.
        self.commit(&item, LeaseState::Idle).await?;
        self.writer
            .send(&ThreadStreamEvent::ItemDone { item: item.clone() })
            .await;
        let (resume_tx, mut resume_rx) = mpsc::channel(1);
        self.desk.post(item.clone(), resume_tx);
        self.writer.detach();
        let waited =
            tokio::time::timeout(self.env.settings.agent.ask_timeout, resume_rx.recv()).await;
        self.desk.withdraw(&item.id);
        let reason = match outcome(waited.ok()) {
            Ok(answer) => return self.answered(*answer).await,
            Err(reason) => reason,
        };
        tracing::debug!(thread_id = %self.thread_id, ?reason, "question skipped");
        *self.skipped = true;
        let ItemBody::StructuredInput(asked) = &item.body else {
            unreachable!("built above")
        };
        let skipped = ThreadItem {
            body: ItemBody::StructuredInput(skip_all(asked)),
            ..item
        };
        self.commit(&skipped, LeaseState::Idle).await?;
        Ok(body_of(skipped))
    }

    /// The answer committed (the request told), then the turn goes on in its stream.
    async fn answered(&mut self, answer: AnswerDelivery) -> Result<StructuredInputItem, Ended> {
        let AnswerDelivery {
            item,
            frames,
            accepted,
            deadline,
        } = answer;
        let commit = self.env.persist_as(
            self.lease,
            LeaseState::Streaming,
            vec![WriteOp::put_item(&item)],
        );
        if let Err(error) = deadline.bound("committing the answer", commit).await {
            tracing::warn!(thread_id = %self.thread_id, %error, "could not commit an answer");
            let _ = accepted.send(Err(error));
            return Err(Ended::CommitFailed);
        }
        let _ = accepted.send(Ok(()));
        self.committed.push(item.clone());
        self.writer.attach(frames);
        let stream_options = StreamOptions {
            allow_cancel: self.env.settings.allow_cancel,
        };
        self.writer
            .send(&ThreadStreamEvent::StreamOptions { stream_options })
            .await;
        self.writer
            .send(&ThreadStreamEvent::ItemReplaced { item: item.clone() })
            .await;
        Ok(body_of(item))
    }

    async fn commit(&mut self, item: &ThreadItem, state: LeaseState) -> Result<(), Ended> {
        let ops = vec![WriteOp::put_item(item)];
        match self.env.persist_as(self.lease, state, ops).await {
            Ok(()) => {
                self.committed.push(item.clone());
                Ok(())
            }
            Err(error) => {
                tracing::warn!(thread_id = %self.thread_id, %error, "could not commit a question");
                Err(Ended::CommitFailed)
            }
        }
    }
}

/// What the wait for an answer came to: `None` when `agent.ask_timeout_secs` passed (the
/// question expired), `Some(None)` when nobody can answer any more (the actor went away).
fn outcome(waited: Option<Option<Resume>>) -> Result<Box<AnswerDelivery>, SkipReason> {
    match waited {
        Some(Some(Resume::Answered(answer))) => Ok(answer),
        Some(Some(Resume::Skipped(reason))) => Err(reason),
        Some(None) => Err(SkipReason::Retiring),
        None => Err(SkipReason::Expired),
    }
}

fn body_of(item: ThreadItem) -> StructuredInputItem {
    match item.body {
        ItemBody::StructuredInput(body) => body,
        _ => unreachable!("a question's item"),
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::oneshot;

    use super::*;
    use crate::actors::turn::question_desk::tests::question;
    use crate::deadline::Deadline;

    #[test]
    fn a_wait_ends_answered_or_skipped_for_a_reason() {
        assert_eq!(outcome(None).err(), Some(SkipReason::Expired));
        assert_eq!(outcome(Some(None)).err(), Some(SkipReason::Retiring));
        let superseded = Some(Some(Resume::Skipped(SkipReason::Superseded)));
        assert_eq!(outcome(superseded).err(), Some(SkipReason::Superseded));
        let (frames, _rx) = crate::frames::channel(1);
        let (accepted, _) = oneshot::channel();
        let delivery = AnswerDelivery {
            item: question("msg_1"),
            frames,
            accepted,
            deadline: Deadline::after(std::time::Duration::from_secs(1)),
        };
        let answered = Some(Some(Resume::Answered(Box::new(delivery))));
        assert!(outcome(answered).is_ok());
    }
}
