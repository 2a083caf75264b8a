//! The thread actor's side of questions to the user (`turn/ask.rs`): an answer goes to the
//! turn that waits on its question (with the answering request's stream); a new message or
//! a retry supersedes a pending question (skipped, then the new turn starts once the waiting
//! one ended); a question no running turn holds (the actor restarted, or the thread came
//! from another instance) is stored skipped when the thread loads.

use actix::prelude::*;
use tokio::sync::oneshot;

use super::messages::{ForwardedAnswer, StartTurn, TurnInput};
use super::ThreadActor;
use crate::actors::env::Lease;
use crate::actors::persistence::Persist;
use crate::actors::turn::{AnswerDelivery, Resume, SkipReason, TurnStart};
use crate::error::EngineError;
use crate::ids::ItemId;
use crate::protocol::structured_input::{apply_submission, skip_all};
use crate::protocol::{
    ItemBody, StreamOptions, StructuredInputStatus, StructuredInputSubmission, ThreadItem,
    ThreadStreamEvent,
};
use crate::store::cluster::LeaseState;
use crate::store::WriteOp;

const NOT_PENDING: &str = "this question is no longer pending";

type Started = ResponseActFuture<ThreadActor, Result<TurnStart, EngineError>>;

impl ThreadActor {
    /// protocol §3.7: the answer goes to the turn waiting on `item_id`'s question. When it
    /// was `forwarded` to the instance holding that turn (which went on with it, then handed
    /// the thread over), the stream tells what that turn stored.
    pub(super) fn answer_question(&mut self, msg: StartTurn, forwarded: bool) -> Started {
        let TurnInput::StructuredInput {
            item_id,
            submission,
        } = msg.input
        else {
            unreachable!("only answers come here")
        };
        let stream_buffer = self.env.settings.actors.stream_buffer;
        let allow_cancel = self.env.settings.allow_cancel;
        let pending = self.questions.pending().filter(|q| q.id == item_id);
        if pending.is_none() && forwarded {
            let relayed = self.live_for(&msg.user_id).and_then(|live| {
                relayed_answer(&live.history, &item_id, allow_cancel)
                    .ok_or_else(|| unheld_answer_error(&live.history, &item_id))
            });
            return Box::pin(actix::fut::ready(relayed.map(started_with)));
        }
        let answered = self.live_for(&msg.user_id).and_then(|live| match &pending {
            Some(question) => answer_for(question, &submission),
            None => Err(unheld_answer_error(&live.history, &item_id)),
        });
        let started = answered.and_then(|item| {
            let (frames, rx) = crate::frames::channel(stream_buffer);
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

    /// An answer another instance received for the question the running turn waits on: the
    /// turn goes on with it (its events go nowhere: that instance tells its client what was
    /// stored). False when no turn waits on that question, or the answer does not fit it.
    pub(super) fn take_forwarded_answer(&mut self, answer: ForwardedAnswer) -> bool {
        let Some(question) = self.questions.pending().filter(|q| q.id == answer.item_id) else {
            return false;
        };
        let Ok(item) = answer_for(&question, &answer.submission) else {
            return false;
        };
        let (frames, mut nobody) = crate::frames::channel(self.env.settings.actors.stream_buffer);
        // Read and dropped: the turn must not take the missing reader for a client gone.
        actix::spawn(async move { while nobody.recv().await.is_some() {} });
        let (accepted, _) = oneshot::channel();
        let deadline = crate::deadline::Deadline::after(self.env.settings.cluster.handover_timeout);
        let delivery = AnswerDelivery {
            item,
            frames,
            accepted,
            deadline,
        };
        self.questions
            .resume(&answer.item_id, Resume::Answered(Box::new(delivery)))
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
        self.env.persistence.do_send(Persist(
            lease.fence(LeaseState::Idle, ops),
            crate::trace::TraceContext::current(),
        ));
        for item in skipped {
            live.put(item);
        }
    }
}

/// What the turn that took a forwarded answer stored, as the answer's stream: `stream_options`,
/// the answered question replaced, then every item after it. `None` unless it was answered.
pub(super) fn relayed_answer(
    history: &[ThreadItem],
    item_id: &ItemId,
    allow_cancel: bool,
) -> Option<Vec<ThreadStreamEvent>> {
    let at = history.iter().position(|i| i.id == *item_id)?;
    let question = &history[at];
    match &question.body {
        ItemBody::StructuredInput(q) if q.status == StructuredInputStatus::Answered => {}
        _ => return None,
    }
    let mut events = vec![
        ThreadStreamEvent::StreamOptions {
            stream_options: StreamOptions { allow_cancel },
        },
        ThreadStreamEvent::ItemReplaced {
            item: question.clone(),
        },
    ];
    events.extend(
        history[at + 1..]
            .iter()
            .filter(|i| !i.is_hidden())
            .map(|item| ThreadStreamEvent::ItemDone { item: item.clone() }),
    );
    Some(events)
}

/// A turn already over, as a started one: its input committed, its events in the stream.
fn started_with(events: Vec<ThreadStreamEvent>) -> TurnStart {
    let (frames, rx) = crate::frames::channel(events.len().max(1));
    for event in &events {
        let _ = frames.try_send(&event.to_sse());
    }
    let (accepted, accepted_rx) = oneshot::channel();
    let _ = accepted.send(Ok(()));
    TurnStart {
        accepted: accepted_rx,
        frames: rx,
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
    use crate::actors::thread::messages::MAX_FORWARDED_BYTES;

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

    #[test]
    fn an_answer_travels_in_a_notification_and_back() {
        let submission: StructuredInputSubmission =
            serde_json::from_value(json!({"answers": {"color": {"values": ["Red"]}}})).unwrap();
        let payload = ForwardedAnswer::payload(&id("msg_q"), &submission).unwrap();
        let back = ForwardedAnswer::from_payload(&payload).unwrap();
        assert_eq!(back.item_id, id("msg_q"));
        assert_eq!(back.submission, submission);
        assert!(ForwardedAnswer::from_payload("msg_q not json").is_none());
        let long: StructuredInputSubmission = serde_json::from_value(
            json!({"answers": {"notes": {"values": ["x".repeat(MAX_FORWARDED_BYTES)]}}}),
        )
        .unwrap();
        assert!(ForwardedAnswer::payload(&id("msg_q"), &long).is_none());
    }

    #[test]
    fn a_forwarded_answer_is_told_as_what_its_turn_stored() {
        let answered = question("msg_q", "answered");
        let after = item("msg_a", json!({"type": "assistant_message", "content": []}));
        let history = vec![answered.clone(), after.clone()];
        let events = relayed_answer(&history, &id("msg_q"), true).unwrap();
        let kinds: Vec<&str> = events
            .iter()
            .map(|e| match e {
                ThreadStreamEvent::StreamOptions { .. } => "stream_options",
                ThreadStreamEvent::ItemReplaced { .. } => "replaced",
                ThreadStreamEvent::ItemDone { .. } => "done",
                _ => "other",
            })
            .collect();
        assert_eq!(kinds, ["stream_options", "replaced", "done"]);
        let skipped = vec![question("msg_q", "skipped"), after];
        assert!(relayed_answer(&skipped, &id("msg_q"), true).is_none());
    }
}
