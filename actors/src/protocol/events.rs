//! Thread stream events (protocol §4) and item updates (protocol §5). `type` is always the first key.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::items::{Annotation, AssistantMessageContent, GeneratedImage, ThreadItem};
use super::thread::Thread;
use crate::ids::ItemId;

/// One event of a streamed response; serialized as `data: <json>\n\n` (protocol §1.3).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ThreadStreamEvent {
    #[serde(rename = "thread.created")]
    ThreadCreated { thread: Thread },
    #[serde(rename = "thread.updated")]
    ThreadUpdated { thread: Thread },
    #[serde(rename = "thread.item.added")]
    ItemAdded { item: ThreadItem },
    #[serde(rename = "thread.item.updated")]
    ItemUpdated {
        item_id: ItemId,
        update: ThreadItemUpdate,
    },
    #[serde(rename = "thread.item.done")]
    ItemDone { item: ThreadItem },
    #[serde(rename = "thread.item.removed")]
    ItemRemoved { item_id: ItemId },
    #[serde(rename = "thread.item.replaced")]
    ItemReplaced { item: ThreadItem },
    #[serde(rename = "stream_options")]
    StreamOptions { stream_options: StreamOptions },
    #[serde(rename = "progress_update")]
    ProgressUpdate {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        icon: Option<String>,
        text: String,
    },
    #[serde(rename = "client_effect")]
    ClientEffect {
        name: String,
        #[serde(default)]
        data: Map<String, Value>,
    },
    #[serde(rename = "error")]
    Error {
        #[serde(default)]
        code: ErrorCode,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
        #[serde(default)]
        allow_retry: bool,
    },
    #[serde(rename = "notice")]
    Notice {
        level: NoticeLevel,
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<String>,
    },
}

impl ThreadStreamEvent {
    /// The generic in-band failure (protocol §1.4): `stream.error`, no message.
    pub fn stream_error(allow_retry: bool) -> Self {
        ThreadStreamEvent::Error {
            code: ErrorCode::StreamError,
            message: None,
            allow_retry,
        }
    }

    /// An in-band failure the UI shows verbatim.
    pub fn custom_error(message: impl Into<String>, allow_retry: bool) -> Self {
        ThreadStreamEvent::Error {
            code: ErrorCode::Custom,
            message: Some(message.into()),
            allow_retry,
        }
    }

    /// The SSE frame of `thread.item.done` for an item whose wire JSON is `item_json` (as its
    /// stored row holds it): the same bytes as [`ThreadStreamEvent::ItemDone`]'s frame,
    /// without serializing the item a second time.
    pub fn item_done_frame(item_json: &str) -> bytes::Bytes {
        const HEAD: &[u8] = b"data: {\"type\":\"thread.item.done\",\"item\":";
        let mut buf = Vec::with_capacity(HEAD.len() + item_json.len() + 3);
        buf.extend_from_slice(HEAD);
        buf.extend_from_slice(item_json.as_bytes());
        buf.extend_from_slice(b"}\n\n");
        bytes::Bytes::from(buf)
    }

    /// The SSE frame of this event: `data: <compact json>\n\n`.
    pub fn to_sse(&self) -> bytes::Bytes {
        // A text delta's frame is ≈ 170 bytes: room for it without growing the buffer.
        let mut buf = Vec::with_capacity(256);
        buf.extend_from_slice(b"data: ");
        serde_json::to_writer(&mut buf, self).expect("events always serialize");
        buf.extend_from_slice(b"\n\n");
        bytes::Bytes::from(buf)
    }
}

/// protocol §4 `stream_options`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StreamOptions {
    pub allow_cancel: bool,
}

/// protocol §1.4 error codes; the enum is open upstream, we emit these two.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorCode {
    #[serde(rename = "stream.error")]
    StreamError,
    #[default]
    #[serde(rename = "custom")]
    Custom,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NoticeLevel {
    Info,
    Warning,
    Danger,
}

/// protocol §5 `ThreadItemUpdate`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ThreadItemUpdate {
    #[serde(rename = "assistant_message.content_part.added")]
    ContentPartAdded {
        content_index: usize,
        content: AssistantMessageContent,
    },
    #[serde(rename = "assistant_message.content_part.text_delta")]
    TextDelta { content_index: usize, delta: String },
    #[serde(rename = "assistant_message.content_part.annotation_added")]
    AnnotationAdded {
        content_index: usize,
        annotation_index: usize,
        annotation: Annotation,
    },
    #[serde(rename = "assistant_message.content_part.done")]
    ContentPartDone {
        content_index: usize,
        content: AssistantMessageContent,
    },
    #[serde(rename = "widget.streaming_text.value_delta")]
    WidgetStreamingTextDelta {
        component_id: String,
        delta: String,
        done: bool,
    },
    #[serde(rename = "widget.component.updated")]
    WidgetComponentUpdated {
        component_id: String,
        component: Value,
    },
    #[serde(rename = "widget.root.updated")]
    WidgetRootUpdated { widget: Value },
    #[serde(rename = "workflow.task.added")]
    WorkflowTaskAdded { task_index: usize, task: Value },
    #[serde(rename = "workflow.task.updated")]
    WorkflowTaskUpdated { task_index: usize, task: Value },
    #[serde(rename = "generated_image.updated")]
    GeneratedImageUpdated {
        image: GeneratedImage,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        progress: Option<f64>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_done_frame_built_from_an_items_json_is_the_events_own_frame() {
        let fixtures = include_str!("../../../tests/fixtures/items.jsonl");
        let mut seen = 0;
        for line in fixtures.lines().filter(|l| !l.trim().is_empty()) {
            let item: ThreadItem = serde_json::from_str(line).expect("an item fixture");
            let json = serde_json::to_string(&item).unwrap();
            assert_eq!(
                ThreadStreamEvent::item_done_frame(&json),
                ThreadStreamEvent::ItemDone { item }.to_sse(),
                "{line}"
            );
            seen += 1;
        }
        assert!(seen > 10, "every item type: {seen} fixtures");
    }
}
