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

    /// Appends the SSE frame of `thread.item.done` for an item whose wire JSON is
    /// `item_json` (as its stored row holds it): the same bytes as
    /// [`ThreadStreamEvent::ItemDone`]'s frame, without serializing the item a second time.
    pub fn write_item_done_sse(item_json: &str, out: &mut Vec<u8>) {
        out.extend_from_slice(b"data: {\"type\":\"thread.item.done\",\"item\":");
        out.extend_from_slice(item_json.as_bytes());
        out.extend_from_slice(b"}\n\n");
    }

    /// Appends the SSE frame of this event: `data: <compact json>\n\n`.
    pub fn write_sse(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"data: ");
        serde_json::to_writer(&mut *out, self).expect("events always serialize");
        out.extend_from_slice(b"\n\n");
    }

    /// Appends the SSE frame of a `text_delta` update of message `item_id` (content part
    /// 0): the same bytes as the [`ThreadStreamEvent::ItemUpdated`] event's frame, written
    /// from borrowed parts (a turn sends one per piece of its answer).
    pub fn write_text_delta_sse(item_id: &ItemId, delta: &str, out: &mut Vec<u8>) {
        out.extend_from_slice(b"data: {\"type\":\"thread.item.updated\",\"item_id\":");
        serde_json::to_writer(&mut *out, item_id).expect("ids serialize");
        out.extend_from_slice(
            b",\"update\":{\"type\":\"assistant_message.content_part.text_delta\",\
              \"content_index\":0,\"delta\":",
        );
        serde_json::to_writer(&mut *out, delta).expect("strings serialize");
        out.extend_from_slice(b"}}\n\n");
    }

    /// The SSE frame of this event, on its own.
    pub fn to_sse(&self) -> Vec<u8> {
        let mut frame = Vec::new();
        self.write_sse(&mut frame);
        frame
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
    fn the_text_delta_frame_written_from_parts_is_the_events_own_frame() {
        let id = ItemId::generate(crate::ids::prefix::MESSAGE);
        for delta in [
            "",
            "Hello",
            " wörld\n\"quoted\" \\ \u{0} \u{1F600}",
            "\u{2028}</script>",
        ] {
            let mut built = Vec::new();
            ThreadStreamEvent::write_text_delta_sse(&id, delta, &mut built);
            let own = ThreadStreamEvent::ItemUpdated {
                item_id: id.clone(),
                update: ThreadItemUpdate::TextDelta {
                    content_index: 0,
                    delta: delta.to_string(),
                },
            }
            .to_sse();
            assert_eq!(
                String::from_utf8(built).unwrap(),
                String::from_utf8(own).unwrap()
            );
        }
    }

    #[test]
    fn the_done_frame_built_from_an_items_json_is_the_events_own_frame() {
        let fixtures = include_str!("../../../tests/fixtures/items.jsonl");
        let mut seen = 0;
        for line in fixtures.lines().filter(|l| !l.trim().is_empty()) {
            let item: ThreadItem = serde_json::from_str(line).expect("an item fixture");
            let json = serde_json::to_string(&item).unwrap();
            let mut built = b"data: {}\n\n".to_vec();
            ThreadStreamEvent::write_item_done_sse(&json, &mut built);
            let mut own = b"data: {}\n\n".to_vec();
            ThreadStreamEvent::ItemDone { item }.write_sse(&mut own);
            assert_eq!(
                String::from_utf8(built).unwrap(),
                String::from_utf8(own).unwrap(),
                "{line}"
            );
            seen += 1;
        }
        assert!(seen > 10, "every item type: {seen} fixtures");
    }
}
