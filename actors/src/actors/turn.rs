//! One turn of a thread: commit the input, stream the model's answer as ChatKit events,
//! commit the answer, and handle the client leaving (§8.8) or the model failing (§8.9).
//!
//! A turn runs as a future on its thread actor's context; it owns snapshots of what it needs
//! and reports back a [`TurnOutcome`] that the actor applies to its state.

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::mpsc;

use crate::engine::EngineEnv;
use crate::error::EngineError;
use crate::ids::{new_id, prefix};
use crate::model::{ChatMessage, ModelError, ModelEvent};
use crate::protocol::{
    AssistantMessage, AssistantMessageContent, ItemBody, Page, SdkHiddenContext, StreamOptions,
    ThreadItem, ThreadItemUpdate, ThreadMeta, ThreadStreamEvent, Timestamp,
    CANCELLED_STREAM_CONTEXT,
};
use crate::store::WriteOp;

/// What the HTTP layer reads: SSE frames, or one error instead of the first frame when the
/// turn failed before anything was acknowledged (the edge answers that as JSON).
pub type TurnFrame = Result<Bytes, EngineError>;
pub type TurnStream = mpsc::Receiver<TurnFrame>;

/// Everything a turn needs, prepared by the thread actor.
pub(crate) struct TurnJob {
    pub env: Arc<EngineEnv>,
    pub thread_id: String,
    /// Written before anything is sent (thread creation, user message, tool output).
    pub prelude_ops: Vec<WriteOp>,
    /// Sent once `prelude_ops` committed (`thread.created`, the user message's `done`).
    pub prelude_events: Vec<ThreadStreamEvent>,
    /// Items `prelude_ops` store, for the actor's history.
    pub prelude_items: Vec<ThreadItem>,
    /// Item ids `prelude_ops` delete.
    pub removed_ids: Vec<String>,
    pub model_input: Vec<ChatMessage>,
    pub last_created_at: Option<Timestamp>,
    pub events: mpsc::Sender<TurnFrame>,
    /// Set when the thread is untitled and this is its first answer: the thread and the
    /// user's text to title it from.
    pub title_from: Option<(ThreadMeta, String)>,
}

/// What a turn changed, for the actor to apply to its memory.
#[derive(Default)]
pub(crate) struct TurnOutcome {
    /// The prelude committed: for a new thread, the thread now exists.
    pub prelude_committed: bool,
    /// Committed items, in order (new ones appended, existing ids replaced).
    pub committed: Vec<ThreadItem>,
    pub removed_ids: Vec<String>,
    /// A commit failed: memory may disagree with the database, reload it.
    pub reload: bool,
    /// A generated title that was saved.
    pub title: Option<String>,
}

enum Phase {
    Completed,
    Cancelled,
    Failed,
}

/// Runs one turn to its end. Never panics on purpose; the actor catches it if it does.
pub(crate) async fn run_turn(job: TurnJob) -> TurnOutcome {
    let mut outcome = TurnOutcome::default();
    let env = job.env.clone();
    let tx = job.events.clone();

    if !job.prelude_ops.is_empty() {
        if let Err(error) = env.persist(job.prelude_ops).await {
            tracing::warn!(thread_id = %job.thread_id, %error, "could not commit the turn's input");
            // Nothing was acknowledged: the edge answers with a JSON error, not a stream.
            let _ = tx.send(Err(error)).await;
            outcome.reload = true;
            return outcome;
        }
    }
    outcome.prelude_committed = true;
    outcome.committed.extend(job.prelude_items);
    outcome.removed_ids = job.removed_ids;

    let mut writer = EventWriter {
        tx: &tx,
        open: true,
    };
    for event in &job.prelude_events {
        writer.send(event).await;
    }
    let allow_cancel = env.settings.allow_cancel;
    writer
        .send(&ThreadStreamEvent::StreamOptions {
            stream_options: StreamOptions { allow_cancel },
        })
        .await;

    let mut answer = AnswerInProgress::new(&job.thread_id, job.last_created_at);
    let phase = if writer.open {
        stream_answer(&env, &job.model_input, &mut writer, &mut answer).await
    } else {
        Phase::Cancelled
    };

    match phase {
        Phase::Completed => {
            let item = answer.finish();
            let done = ThreadStreamEvent::ItemUpdated {
                item_id: item.id.clone(),
                update: ThreadItemUpdate::ContentPartDone {
                    content_index: 0,
                    content: AssistantMessageContent::text(answer.text.clone()),
                },
            };
            writer.send(&done).await;
            match env.persist(vec![WriteOp::put_item(&item)]).await {
                Ok(()) => {
                    writer
                        .send(&ThreadStreamEvent::ItemDone { item: item.clone() })
                        .await;
                    outcome.committed.push(item);
                    if let Some((meta, text)) = job.title_from {
                        outcome.title = save_title(&env, meta, &text, &mut writer).await;
                    }
                }
                Err(error) => {
                    tracing::warn!(thread_id = %job.thread_id, %error, "could not commit the answer");
                    writer.send(&ThreadStreamEvent::stream_error(true)).await;
                    outcome.reload = true;
                }
            }
        }
        Phase::Failed => {
            // §8.9: the partial answer is not stored; the client may retry.
            writer.send(&ThreadStreamEvent::stream_error(true)).await;
        }
        Phase::Cancelled => {
            // §8.8: keep a non-empty partial answer, and always the hidden marker.
            let mut items = Vec::new();
            if answer.started && !answer.text.trim().is_empty() {
                items.push(answer.finish());
            }
            let last = items
                .last()
                .map(|i| i.created_at)
                .or(answer.created_at_floor);
            items.push(ThreadItem {
                id: new_id(prefix::SDK_HIDDEN_CONTEXT),
                thread_id: job.thread_id.clone(),
                created_at: Timestamp::now_after(last),
                body: ItemBody::SdkHiddenContext(SdkHiddenContext {
                    content: CANCELLED_STREAM_CONTEXT.to_string(),
                }),
            });
            let ops = items.iter().map(WriteOp::put_item).collect();
            match env.persist(ops).await {
                Ok(()) => outcome.committed.extend(items),
                Err(error) => {
                    tracing::warn!(thread_id = %job.thread_id, %error, "could not store the cancelled answer");
                    outcome.reload = true;
                }
            }
            tracing::debug!(thread_id = %job.thread_id, "client left; turn cancelled");
        }
    }
    outcome
}

/// Generates, saves and announces a title (§8.7). Failures only cost the title.
async fn save_title(
    env: &EngineEnv,
    mut meta: ThreadMeta,
    text: &str,
    writer: &mut EventWriter<'_>,
) -> Option<String> {
    let settings = &env.settings.titles;
    let messages = [
        ChatMessage::System {
            content: settings.prompt.clone(),
        },
        ChatMessage::User {
            content: text.to_string(),
        },
    ];
    let raw = match env.model.complete(&messages).await {
        Ok(raw) => raw,
        Err(error) => {
            tracing::warn!(thread_id = %meta.id, %error, "title generation failed");
            return None;
        }
    };
    let title = clean_title(&raw, settings.max_chars)?;
    let op = WriteOp::SetTitleIfUntitled {
        thread_id: meta.id.clone(),
        title: title.clone(),
    };
    if let Err(error) = env.persist(vec![op]).await {
        tracing::warn!(thread_id = %meta.id, %error, "could not save the title");
        return None;
    }
    meta.title = Some(title.clone());
    writer
        .send(&ThreadStreamEvent::ThreadUpdated {
            thread: meta.to_wire(Page::empty()),
        })
        .await;
    Some(title)
}

/// One line, no surrounding quotes, at most `max_chars` characters; `None` if empty.
fn clean_title(raw: &str, max_chars: usize) -> Option<String> {
    let line = raw.lines().find(|l| !l.trim().is_empty())?.trim();
    let line = line
        .trim_matches(|c: char| c == '"' || c == '\'' || c == '“' || c == '”')
        .trim();
    let mut title: String = line.chars().take(max_chars).collect();
    if line.chars().count() > max_chars {
        title = title.trim_end().to_string();
        title.push('…');
    }
    (!title.is_empty()).then_some(title)
}

/// Sends events while the client listens; remembers when it left.
struct EventWriter<'a> {
    tx: &'a mpsc::Sender<TurnFrame>,
    open: bool,
}

impl EventWriter<'_> {
    async fn send(&mut self, event: &ThreadStreamEvent) {
        if self.open && self.tx.send(Ok(event.to_sse())).await.is_err() {
            self.open = false;
        }
    }
}

/// The assistant message being streamed.
struct AnswerInProgress {
    id: String,
    thread_id: String,
    created_at: Timestamp,
    created_at_floor: Option<Timestamp>,
    text: String,
    started: bool,
}

impl AnswerInProgress {
    fn new(thread_id: &str, floor: Option<Timestamp>) -> Self {
        AnswerInProgress {
            id: new_id(prefix::MESSAGE),
            thread_id: thread_id.to_string(),
            created_at: Timestamp::now_after(floor),
            created_at_floor: floor,
            text: String::new(),
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

    fn finish(&self) -> ThreadItem {
        self.item(vec![AssistantMessageContent::text(self.text.clone())])
    }
}

/// Streams the model's answer as `added` → `content_part.added` → `text_delta`… (§8.3).
async fn stream_answer(
    env: &EngineEnv,
    input: &[ChatMessage],
    writer: &mut EventWriter<'_>,
    answer: &mut AnswerInProgress,
) -> Phase {
    let tx = writer.tx;
    let started = tokio::select! {
        biased;
        _ = tx.closed() => return Phase::Cancelled,
        started = env.model.stream(input, &[]) => started,
    };
    let mut stream = match started {
        Ok(stream) => stream,
        Err(error) => {
            log_model_error(&error);
            return Phase::Failed;
        }
    };
    loop {
        let next = tokio::select! {
            biased;
            _ = tx.closed() => return Phase::Cancelled,
            next = stream.next() => next,
        };
        match next {
            None | Some(Ok(ModelEvent::Finished { .. })) => break,
            Some(Ok(ModelEvent::TextDelta(delta))) => {
                begin_answer(writer, answer).await;
                answer.text.push_str(&delta);
                let event = ThreadStreamEvent::ItemUpdated {
                    item_id: answer.id.clone(),
                    update: ThreadItemUpdate::TextDelta {
                        content_index: 0,
                        delta,
                    },
                };
                writer.send(&event).await;
            }
            Some(Ok(ModelEvent::ToolCallDelta { .. })) => {
                // No tools are offered in this configuration; ignore stray calls.
            }
            Some(Err(error)) => {
                log_model_error(&error);
                return Phase::Failed;
            }
        }
        if !writer.open {
            return Phase::Cancelled;
        }
    }
    begin_answer(writer, answer).await;
    if writer.open {
        Phase::Completed
    } else {
        Phase::Cancelled
    }
}

async fn begin_answer(writer: &mut EventWriter<'_>, answer: &mut AnswerInProgress) {
    if answer.started {
        return;
    }
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

fn log_model_error(error: &ModelError) {
    tracing::warn!(%error, "model call failed");
}

#[cfg(test)]
mod tests {
    use super::clean_title;

    #[test]
    fn titles_are_one_clean_bounded_line() {
        assert_eq!(
            clean_title("\n \"Paris weather\"\nmore", 60).as_deref(),
            Some("Paris weather")
        );
        assert_eq!(clean_title("abcdef", 3).as_deref(), Some("abc…"));
        assert_eq!(clean_title("  \n ", 10), None);
    }
}
