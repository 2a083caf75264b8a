//! The thread actor's side of questions to the user (`turn/ask.rs`): an answer goes to the
//! turn that waits on its question (with the answering request's stream); a new message or
//! a retry supersedes a pending question (skipped, then the new turn starts once the waiting
//! one ended); a question no running turn holds (the actor restarted, or the thread came
//! from another instance) is stored skipped when the thread loads.

use actix::prelude::*;
use tokio::sync::{mpsc, oneshot};

use super::messages::{StartTurn, TurnInput};
use super::ThreadActor;
use crate::actors::env::Lease;
use crate::actors::persistence::Persist;
use crate::actors::turn::{AnswerDelivery, Resume, SkipReason, TurnStart};
use crate::error::EngineError;
use crate::ids::ItemId;
use crate::protocol::structured_input::{apply_submission, skip_all};
use crate::protocol::{ItemBody, StructuredInputStatus, StructuredInputSubmission, ThreadItem};
use crate::store::cluster::LeaseState;
use crate::store::WriteOp;

const NOT_PENDING: &str = "this question is no longer pending";

type Started = ResponseActFuture<ThreadActor, Result<TurnStart, EngineError>>;

impl ThreadActor {
    /// protocol §3.7: the answer goes to the turn waiting on `item_id`'s question.
    pub(super) fn answer_question(&mut self, msg: StartTurn) -> Started {
        let TurnInput::StructuredInput {
            item_id,
            submission,
        } = msg.input
        else {
            unreachable!("only answers come here")
        };
        let stream_buffer = self.env.settings.actors.stream_buffer;
        let pending = self.questions.pending().filter(|q| q.id == item_id);
        let answered = self.live_for(&msg.user_id).and_then(|live| match &pending {
            Some(question) => answer_for(question, &submission),
            None => Err(unheld_answer_error(&live.history, &item_id)),
        });
        let started = answered.and_then(|item| {
            let (frames, rx) = mpsc::channel(stream_buffer);
            let (accepted, accepted_rx) = oneshot::channel();
            let delivery = AnswerDelivery {
                item,
                frames,
                accepted,
                deadline: msg.deadline,
            };
            match self
                .questions
                .resume(&item_id, Resume::Answered(Box::new(delivery)))
            {
                true => Ok(TurnStart {
                    accepted: accepted_rx,
                    frames: rx,
                }),
                false => Err(EngineError::Conflict(NOT_PENDING.into())),
            }
        });
        Box::pin(actix::fut::ready(started))
    }

    /// A new message (or a retry) while the running turn waits on a question: the question
    /// is skipped, and the new turn starts once that turn ended (within the request's
    /// deadline).
    pub(super) fn supersede_question(&mut self, msg: StartTurn, lease: Lease) -> Started {
        if let Err(e) = self.live_for(&msg.user_id) {
            return Box::pin(actix::fut::ready(Err(e)));
        }
        if !self.questions.skip(SkipReason::Superseded) {
            return Box::pin(actix::fut::ready(Err(EngineError::ThreadBusy)));
        }
        let (ended, wait) = oneshot::channel();
        self.on_turn_end.push(ended);
        let deadline = msg.deadline;
        let wait = async move {
            // A dropped sender: the actor restarted; the new turn finds out below.
            let _ = wait.await;
            Ok::<(), EngineError>(())
        };
        Box::pin(
            deadline
                .bound("waiting for the superseded turn", wait)
                .into_actor(self)
                .map(move |waited, act, ctx| {
                    waited?;
                    act.spawn_turn(msg, lease.fencing, ctx)
                }),
        )
    }

    /// Questions no running turn holds, stored skipped (fire and forget: one that stays
    /// pending is skipped again on the next load, and answers to it are refused meanwhile).
    pub(super) fn skip_orphaned_questions(&mut self, lease: &Lease) {
        let super::ThreadState::Ready(live) = &mut self.state else {
            return;
        };
        let skipped = orphaned_questions(&live.history);
        if skipped.is_empty() {
            return;
        }
        let ops = skipped.iter().map(WriteOp::put_item).collect();
        self.env
            .persistence
            .do_send(Persist(lease.fence(LeaseState::Idle, ops)));
        for item in skipped {
            live.put(item);
        }
    }
}

/// The question's item with the submission recorded; a clear 4xx when it cannot be.
pub(super) fn answer_for(
    question: &ThreadItem,
    submission: &StructuredInputSubmission,
) -> Result<ThreadItem, EngineError> {
    let ItemBody::StructuredInput(asked) = &question.body else {
        return Err(not_a_question(&question.id));
    };
    let answered = apply_submission(asked, submission)
        .map_err(|_| EngineError::Conflict(NOT_PENDING.into()))?;
    Ok(ThreadItem {
        body: ItemBody::StructuredInput(answered),
        ..question.clone()
    })
}

/// Why an answer to `item_id`, which no running turn waits on, is refused.
pub(super) fn unheld_answer_error(history: &[ThreadItem], item_id: &ItemId) -> EngineError {
    match history.iter().find(|i| i.id == *item_id) {
        None => EngineError::ItemNotFound,
        Some(item) if !matches!(item.body, ItemBody::StructuredInput(_)) => not_a_question(item_id),
        Some(_) => EngineError::Conflict(NOT_PENDING.into()),
    }
}

fn not_a_question(item_id: &ItemId) -> EngineError {
    EngineError::InvalidInput(format!("item {item_id} is not a structured_input item"))
}

/// Pending questions of a thread no turn runs on, skipped.
pub(super) fn orphaned_questions(history: &[ThreadItem]) -> Vec<ThreadItem> {
    history
        .iter()
        .filter_map(|item| match &item.body {
            ItemBody::StructuredInput(q) if q.status == StructuredInputStatus::Pending => {
                Some(ThreadItem {
                    body: ItemBody::StructuredInput(skip_all(q)),
                    ..item.clone()
                })
            }
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn item(id: &str, body: serde_json::Value) -> ThreadItem {
        let mut item = json!({"id": id, "thread_id": "thr_1", "created_at": "2025-01-01T00:00:00"});
        item.as_object_mut()
            .unwrap()
            .extend(body.as_object().unwrap().clone());
        serde_json::from_value(item).unwrap()
    }

    fn question(id: &str, status: &str) -> ThreadItem {
        item(
            id,
            json!({"type": "structured_input", "status": status, "inputs": [
                {"id": "color", "question": "Color?", "type": "multiple_choice", "options": [{"value": "Red"}]}
            ]}),
        )
    }

    fn id(text: &str) -> ItemId {
        ItemId::parse(text).unwrap()
    }

    #[test]
    fn an_answer_is_recorded_on_a_pending_question_only() {
        let submission: StructuredInputSubmission =
            serde_json::from_value(json!({"answers": {"color": {"values": ["Red"]}}})).unwrap();
        let answered = answer_for(&question("msg_1", "pending"), &submission).unwrap();
        let ItemBody::StructuredInput(body) = &answered.body else {
            panic!()
        };
        assert_eq!(body.status, StructuredInputStatus::Answered);
        assert!(matches!(
            answer_for(&answered, &submission),
            Err(EngineError::Conflict(_))
        ));
    }

    #[test]
    fn answers_nobody_waits_for_are_refused_clearly() {
        let history = vec![
            item(
                "msg_u",
                json!({"type": "user_message", "content": [], "inference_options": {}}),
            ),
            question("msg_q", "skipped"),
        ];
        assert!(matches!(
            unheld_answer_error(&history, &id("msg_none")),
            EngineError::ItemNotFound
        ));
        assert!(matches!(
            unheld_answer_error(&history, &id("msg_u")),
            EngineError::InvalidInput(_)
        ));
        assert!(matches!(
            unheld_answer_error(&history, &id("msg_q")),
            EngineError::Conflict(_)
        ));
    }

    #[test]
    fn pending_questions_of_a_loaded_thread_are_skipped() {
        let history = vec![question("msg_a", "answered"), question("msg_p", "pending")];
        let skipped = orphaned_questions(&history);
        assert_eq!(skipped.len(), 1);
        assert_eq!(skipped[0].id, id("msg_p"));
        let ItemBody::StructuredInput(body) = &skipped[0].body else {
            panic!()
        };
        assert_eq!(body.status, StructuredInputStatus::Skipped);
    }
}
