//! What a turn streams: the event writer (which notices the client leaving) and the items
//! being built while their events stream.

use std::time::Instant;

use serde::Serialize;
use serde_json::Value;
use tokio::sync::watch;

use crate::config::OnDisconnect;
use crate::frames::FrameSender;
use crate::ids::{prefix, ItemId, ThreadId};
use crate::protocol::{
    AssistantMessage, AssistantMessageContent, ItemBody, ThreadItem, ThreadItemUpdate,
    ThreadStreamEvent, Timestamp, Workflow, WorkflowItem, WorkflowKind,
};

/// A workflow item being built: from tool calls (`custom`), or from the model's reasoning
/// (`reasoning`: one `thought` task per paragraph of the reasoning text).
pub(super) struct WorkflowInProgress {
    pub id: ItemId,
    pub kind: WorkflowKind,
    pub created_at: Timestamp,
    pub started: Instant,
    pub tasks: Vec<WorkflowTask>,
    /// The reasoning text so far (reasoning workflows).
    pub reasoning: String,
    /// The task its first thought is (tasks before it are thoughts already shown, and hosted
    /// tool steps that came between).
    pub thoughts_from: usize,
    /// When the thoughts were last brought up to date on the client.
    pub shown_at: Option<Instant>,
}

/// How often the thought being written is re-sent while it grows: each update carries the
/// whole thought (protocol §5), so one per delta would send the reasoning quadratically.
pub(super) const THOUGHT_UPDATE_INTERVAL: std::time::Duration =
    std::time::Duration::from_millis(100);

/// The reasoning's thoughts: its paragraphs (cut at blank lines), trimmed, empty ones dropped.
pub(super) fn thoughts(reasoning: &str) -> Vec<&str> {
    reasoning
        .split("\n\n")
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect()
}

/// A workflow task (protocol §7.6), its keys in the reference's order.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub(super) struct WorkflowTask {
    pub status_indicator: StatusIndicator,
    #[serde(rename = "type")]
    pub kind: TaskKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// The fields of the other task types (`web_search`: `title_query`, `queries`,
    /// `sources`; `file`: `sources`), in their order.
    #[serde(flatten)]
    pub more: serde_json::Map<String, Value>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum StatusIndicator {
    None,
    Loading,
    Complete,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum TaskKind {
    Custom,
    Thought,
    #[serde(rename = "web_search")]
    WebSearch,
    File,
}

impl WorkflowTask {
    /// A paragraph of the model's reasoning.
    pub fn thought(content: &str) -> Self {
        WorkflowTask {
            status_indicator: StatusIndicator::None,
            kind: TaskKind::Thought,
            title: None,
            content: Some(content.to_string()),
            more: serde_json::Map::new(),
        }
    }

    /// A tool call running (`content` None) or finished with its output.
    pub fn tool_call(name: &str, content: Option<String>) -> Self {
        WorkflowTask {
            status_indicator: match content {
                None => StatusIndicator::Loading,
                Some(_) => StatusIndicator::Complete,
            },
            kind: TaskKind::Custom,
            title: Some(name.to_string()),
            content,
            more: serde_json::Map::new(),
        }
    }

    /// As the protocol's items hold it.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).expect("a task serializes")
    }
}

/// A closed workflow's summary: how long it ran, in whole seconds.
#[derive(Serialize)]
struct DurationSummary {
    duration: u64,
}

impl WorkflowInProgress {
    pub fn new(kind: WorkflowKind, created_at: Timestamp, tasks: Vec<WorkflowTask>) -> Self {
        WorkflowInProgress {
            id: ItemId::generate(prefix::WORKFLOW),
            kind,
            created_at,
            started: Instant::now(),
            tasks,
            reasoning: String::new(),
            thoughts_from: 0,
            shown_at: None,
        }
    }

    /// The item, with its duration summary once `closed`.
    pub fn item(&self, thread_id: &ThreadId, closed: bool) -> ThreadItem {
        let summary = closed.then(|| {
            let duration = self.started.elapsed().as_secs();
            serde_json::to_value(DurationSummary { duration }).expect("a summary serializes")
        });
        ThreadItem {
            id: self.id.clone(),
            thread_id: thread_id.clone(),
            created_at: self.created_at,
            body: ItemBody::Workflow(WorkflowItem {
                workflow: Workflow {
                    kind: self.kind,
                    tasks: self.tasks.iter().map(WorkflowTask::to_value).collect(),
                    summary,
                    expanded: false,
                },
            }),
        }
    }
}

/// Sends events while the client listens; remembers when it left, and whether its leaving
/// cancels the turn (`stream.on_disconnect`, and the engine stopping). A turn that waits for
/// the user's answer ends its stream (`detach`) and goes on in the answer's (`attach`).
pub(super) struct EventWriter<'a> {
    tx: Option<FrameSender>,
    open: bool,
    /// Where each frame is written before it is sent (reused: no allocation per frame).
    frame: Vec<u8>,
    on_disconnect: OnDisconnect,
    stopping: watch::Receiver<bool>,
    _turn: std::marker::PhantomData<&'a ()>,
}

impl EventWriter<'_> {
    pub fn new(
        tx: FrameSender,
        on_disconnect: OnDisconnect,
        stopping: watch::Receiver<bool>,
    ) -> Self {
        EventWriter {
            tx: Some(tx),
            open: true,
            frame: Vec::with_capacity(FRAME_CAPACITY),
            on_disconnect,
            stopping,
            _turn: std::marker::PhantomData,
        }
    }

    /// True once the client left and its leaving cancels the turn.
    pub fn cancelled(&self) -> bool {
        !self.open && (self.on_disconnect == OnDisconnect::Cancel || *self.stopping.borrow())
    }

    /// Resolves when the client leaves if that cancels the turn (to notice the leaving
    /// while waiting on something else); with `finish`, when the client left and the engine
    /// stops. While detached there is no client: at once.
    pub async fn cancellation(&self) {
        let Some(tx) = self.tx.clone() else { return };
        match self.on_disconnect {
            OnDisconnect::Cancel => tx.closed().await,
            OnDisconnect::Finish => {
                let mut stopping = self.stopping.clone();
                // A dropped sender: the engine is gone, which stops the turn too.
                let _ = stopping.wait_for(|stopping| *stopping).await;
                tx.closed().await;
            }
        }
    }

    /// Ends the stream: the client reads to its end.
    pub fn detach(&mut self) {
        self.tx = None;
        self.open = false;
    }

    /// Goes on in another request's stream.
    pub fn attach(&mut self, tx: FrameSender) {
        self.tx = Some(tx);
        self.open = true;
    }

    /// Sends `event` while the client listens; nothing once it left.
    pub async fn send(&mut self, event: &ThreadStreamEvent) {
        self.send_with(|frame| event.write_sse(frame)).await;
    }

    /// Sends a piece of the answer `item_id` while the client listens.
    pub async fn send_text_delta(&mut self, item_id: &ItemId, delta: &str) {
        self.send_with(|frame| ThreadStreamEvent::write_text_delta_sse(item_id, delta, frame))
            .await;
    }

    /// Sends a frame built beforehand while the client listens; nothing once it left.
    pub async fn send_frame(&mut self, frame: &[u8]) {
        let Some(tx) = self.tx.as_ref().filter(|_| self.open) else {
            return;
        };
        if tx.send(frame).await.is_err() {
            self.open = false;
        }
    }

    /// Sends the frame `write` writes (into the reused buffer) while the client listens;
    /// nothing, not even the writing, once it left.
    async fn send_with(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        if self.tx.is_none() || !self.open {
            return;
        }
        let mut frame = std::mem::take(&mut self.frame);
        frame.clear();
        write(&mut frame);
        self.send_frame(&frame).await;
        self.frame = frame;
    }
}

/// Room for a text delta's frame (about 170 bytes) before the frame buffer grows.
const FRAME_CAPACITY: usize = 256;

/// The assistant message being streamed.
pub(super) struct AnswerInProgress {
    pub id: ItemId,
    pub thread_id: ThreadId,
    pub created_at: Timestamp,
    pub text: String,
    /// Citations of the text (protocol §7.4), in order.
    pub annotations: Vec<crate::protocol::Annotation>,
    /// Its `thread.item.added` went out.
    pub started: bool,
}

impl AnswerInProgress {
    pub fn new(thread_id: &ThreadId) -> Self {
        AnswerInProgress {
            id: ItemId::generate(prefix::MESSAGE),
            thread_id: thread_id.clone(),
            created_at: Timestamp::now(),
            text: String::new(),
            annotations: Vec::new(),
            started: false,
        }
    }

    fn item(&self, content: Vec<AssistantMessageContent>) -> ThreadItem {
        ThreadItem {
            id: self.id.clone(),
            thread_id: self.thread_id.clone(),
            created_at: self.created_at,
            body: ItemBody::AssistantMessage(AssistantMessage { content }),
        }
    }

    pub fn finish(&self) -> ThreadItem {
        let mut content = AssistantMessageContent::text(self.text.clone());
        content.annotations = self.annotations.clone();
        self.item(vec![content])
    }
}

/// `thread.item.added` (empty content) and `content_part.added` (protocol §8.3).
pub(super) async fn begin_answer(writer: &mut EventWriter<'_>, answer: &mut AnswerInProgress) {
    answer.started = true;
    writer
        .send(&ThreadStreamEvent::ItemAdded {
            item: answer.item(Vec::new()),
        })
        .await;
    let part_added = ThreadStreamEvent::ItemUpdated {
        item_id: answer.id.clone(),
        update: ThreadItemUpdate::ContentPartAdded {
            content_index: 0,
            content: AssistantMessageContent::text(""),
        },
    };
    writer.send(&part_added).await;
}
