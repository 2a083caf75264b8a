//! Thread items (protocol §2.3, §6) and their content parts (protocol §7). Every item is `id`, `thread_id`,
//! `created_at`, then `type` and the type's fields, in that key order.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::time::Timestamp;
use crate::ids::{ItemId, ThreadId};
use crate::literal_tag;

/// One entry of a thread's transcript.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ThreadItem {
    pub id: ItemId,
    pub thread_id: ThreadId,
    pub created_at: Timestamp,
    #[serde(flatten)]
    pub body: ItemBody,
}

impl ThreadItem {
    /// Hidden items are stored and shown to the model, never to the client (protocol §2.3).
    pub fn is_hidden(&self) -> bool {
        matches!(
            self.body,
            ItemBody::HiddenContext(_) | ItemBody::SdkHiddenContext(_)
        )
    }

    pub fn kind(&self) -> &'static str {
        self.body.kind()
    }
}

/// The type-specific part of an item, tagged by `type`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ItemBody {
    #[serde(rename = "user_message")]
    UserMessage(UserMessage),
    #[serde(rename = "assistant_message")]
    AssistantMessage(AssistantMessage),
    #[serde(rename = "client_tool_call")]
    ClientToolCall(ClientToolCall),
    #[serde(rename = "structured_input")]
    StructuredInput(super::StructuredInputItem),
    #[serde(rename = "widget")]
    Widget(WidgetItem),
    #[serde(rename = "generated_image")]
    GeneratedImage(GeneratedImageItem),
    #[serde(rename = "workflow")]
    Workflow(WorkflowItem),
    #[serde(rename = "task")]
    Task(TaskItem),
    #[serde(rename = "end_of_turn")]
    EndOfTurn(EndOfTurn),
    #[serde(rename = "hidden_context_item")]
    HiddenContext(HiddenContextItem),
    #[serde(rename = "sdk_hidden_context")]
    SdkHiddenContext(SdkHiddenContext),
}

impl ItemBody {
    pub fn kind(&self) -> &'static str {
        match self {
            ItemBody::UserMessage(_) => "user_message",
            ItemBody::AssistantMessage(_) => "assistant_message",
            ItemBody::ClientToolCall(_) => "client_tool_call",
            ItemBody::StructuredInput(_) => "structured_input",
            ItemBody::Widget(_) => "widget",
            ItemBody::GeneratedImage(_) => "generated_image",
            ItemBody::Workflow(_) => "workflow",
            ItemBody::Task(_) => "task",
            ItemBody::EndOfTurn(_) => "end_of_turn",
            ItemBody::HiddenContext(_) => "hidden_context_item",
            ItemBody::SdkHiddenContext(_) => "sdk_hidden_context",
        }
    }
}

/// protocol §6.1. `attachments` holds full attachment objects (protocol §7.3), stamped with the
/// thread id.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UserMessage {
    pub content: Vec<UserMessageContent>,
    #[serde(default)]
    pub attachments: Vec<super::Attachment>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quoted_text: Option<String>,
    pub inference_options: InferenceOptions,
}

impl UserMessage {
    /// The text the model sees: input text as is, tags by their visible text.
    pub fn plain_text(&self) -> String {
        let mut text = String::new();
        for part in &self.content {
            match part {
                UserMessageContent::InputText { text: t } => text.push_str(t),
                UserMessageContent::InputTag { text: t, .. } => {
                    text.push('@');
                    text.push_str(t);
                }
            }
        }
        text
    }
}

/// protocol §7.1 user content parts (`type` first).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum UserMessageContent {
    #[serde(rename = "input_text")]
    InputText { text: String },
    #[serde(rename = "input_tag")]
    InputTag {
        id: String,
        text: String,
        /// Required by pydantic but optional in the JS type: accept a missing one (protocol §13.13).
        #[serde(default)]
        data: Map<String, Value>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        group: Option<String>,
        #[serde(default)]
        interactive: bool,
    },
}

/// protocol §7.2; both keys omitted when null, so usually `{}`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct InferenceOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolChoice {
    pub id: String,
}

/// protocol §6.2.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AssistantMessage {
    pub content: Vec<AssistantMessageContent>,
}

impl AssistantMessage {
    pub fn text(&self) -> String {
        self.content.iter().map(|part| part.text.as_str()).collect()
    }
}

literal_tag!(
    /// `"output_text"`, the only assistant content type; last key of the part.
    OutputText = "output_text"
);

/// Key order `annotations, text, type` (protocol §6.2).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AssistantMessageContent {
    #[serde(default)]
    pub annotations: Vec<Annotation>,
    pub text: String,
    #[serde(default, rename = "type")]
    pub kind: OutputText,
}

impl AssistantMessageContent {
    pub fn text(text: impl Into<String>) -> Self {
        AssistantMessageContent {
            annotations: Vec::new(),
            text: text.into(),
            kind: OutputText,
        }
    }
}

literal_tag!(
    /// `"annotation"`.
    AnnotationTag = "annotation"
);

/// protocol §7.4. Sources are kept as JSON: we forward them, we never build them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Annotation {
    #[serde(rename = "type")]
    pub kind: AnnotationTag,
    pub source: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<i64>,
}

/// protocol §6.3.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClientToolCall {
    #[serde(default)]
    pub status: ToolCallStatus,
    pub call_id: String,
    pub name: String,
    pub arguments: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ToolCallStatus {
    #[default]
    Pending,
    Completed,
}

/// protocol §6.4: a widget root (`Card`, `ListView` or `Basic`), kept as JSON (validated by
/// `widgets::validated_root` before it is stored).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WidgetItem {
    pub widget: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_text: Option<String>,
}

/// protocol §6.5: an image the model made; `image` is left out until it is known. Ours
/// holds a URL this server serves (signed), never the bytes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GeneratedImageItem {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<GeneratedImage>,
}

/// protocol §6.7. Tasks and summaries are kept as JSON (they are built by the tools issue).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkflowItem {
    pub workflow: Workflow,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Workflow {
    #[serde(rename = "type")]
    pub kind: WorkflowKind,
    pub tasks: Vec<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<Value>,
    #[serde(default)]
    pub expanded: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkflowKind {
    Custom,
    Reasoning,
}

/// protocol §6.8: a standalone task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskItem {
    pub task: Value,
}

/// protocol §6.9: no fields besides the envelope.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EndOfTurn {}

/// protocol §6.10: server-only context for the model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HiddenContextItem {
    pub content: Value,
}

/// protocol §6.11: server-only marker, e.g. the cancellation sentence.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SdkHiddenContext {
    pub content: String,
}

/// The exact sentence stored when the user cancels a stream (protocol §8.8).
pub const CANCELLED_STREAM_CONTEXT: &str =
    "The user cancelled the stream. Stop responding to the prior request.";

/// A generated image: its id and where it is (a URL of this server once stored; a data URL
/// while partial).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GeneratedImage {
    pub id: String,
    pub url: String,
}
