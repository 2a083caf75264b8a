//! Where a question to the user waits for its answer: the desk the thread actor and its
//! running turn share (the turn posts its question, the actor resumes it with the answer or
//! skips it), and what the waiting turn is woken with.

use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{mpsc, oneshot};

use crate::deadline::Deadline;
use crate::error::EngineError;
use crate::ids::ItemId;
use crate::protocol::ThreadItem;

/// What the waiting turn is woken with.
pub(crate) enum Resume {
    Answered(Box<AnswerDelivery>),
    Skipped(SkipReason),
}

/// The answer, recorded on the item (checked by the thread actor), and the answering
/// request: its stream, and whether the answer committed (before any frame of it).
pub(crate) struct AnswerDelivery {
    pub item: ThreadItem,
    pub frames: crate::frames::FrameSender,
    pub accepted: oneshot::Sender<Result<(), EngineError>>,
    pub deadline: Deadline,
}

/// Why a question was skipped (for the log).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SkipReason {
    Expired,
    Superseded,
    Retiring,
}

struct PendingQuestion {
    item: ThreadItem,
    resume: mpsc::Sender<Resume>,
}

/// The question the running turn waits on, shared by the thread actor and its turn.
#[derive(Clone, Default)]
pub(crate) struct QuestionDesk(Arc<Mutex<Option<PendingQuestion>>>);

impl QuestionDesk {
    pub(super) fn post(&self, item: ThreadItem, resume: mpsc::Sender<Resume>) {
        *self.lock() = Some(PendingQuestion { item, resume });
    }

    pub(super) fn withdraw(&self, item_id: &ItemId) {
        let mut slot = self.lock();
        if slot.as_ref().is_some_and(|q| q.item.id == *item_id) {
            *slot = None;
        }
    }

    /// The item of the question waiting for its answer, if any.
    pub fn pending(&self) -> Option<ThreadItem> {
        self.lock().as_ref().map(|q| q.item.clone())
    }

    /// Wakes the waiting turn with `resume` if it waits on `item_id` (the question is taken:
    /// a second answer finds none). False when no turn waits on it.
    pub fn resume(&self, item_id: &ItemId, resume: Resume) -> bool {
        let mut slot = self.lock();
        match slot.take() {
            Some(q) if q.item.id == *item_id => q.resume.try_send(resume).is_ok(),
            other => {
                *slot = other;
                false
            }
        }
    }

    /// Skips the pending question, if any; true if there was one.
    pub fn skip(&self, reason: SkipReason) -> bool {
        match self.lock().take() {
            Some(q) => q.resume.try_send(Resume::Skipped(reason)).is_ok(),
            None => false,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<PendingQuestion>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A pending question with no inputs (for the desk's and the asking turn's tests).
    pub(in crate::actors::turn) fn question(id: &str) -> ThreadItem {
        serde_json::from_value(serde_json::json!({
            "id": id, "thread_id": "thr_1", "created_at": "2025-01-01T00:00:00",
            "type": "structured_input", "inputs": []
        }))
        .unwrap()
    }

    #[test]
    fn the_desk_wakes_only_the_turn_waiting_on_that_question_once() {
        let desk = QuestionDesk::default();
        let (tx, mut rx) = mpsc::channel(1);
        desk.post(question("msg_1"), tx);
        let other = ItemId::parse("msg_2").unwrap();
        assert!(!desk.resume(&other, Resume::Skipped(SkipReason::Expired)));
        assert!(desk.pending().is_some());
        let asked = ItemId::parse("msg_1").unwrap();
        assert!(desk.resume(&asked, Resume::Skipped(SkipReason::Superseded)));
        assert!(matches!(
            rx.try_recv(),
            Ok(Resume::Skipped(SkipReason::Superseded))
        ));
        assert!(!desk.resume(&asked, Resume::Skipped(SkipReason::Expired)));
        assert!(!desk.skip(SkipReason::Retiring));
    }
}
