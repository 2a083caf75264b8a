//! The params of the 16 operations (protocol §3), and which thread each addresses.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::super::items::{InferenceOptions, UserMessageContent};
use super::super::page::Order;
use super::super::structured_input::StructuredInputSubmission;
use super::page_size;
use crate::ids::{ItemId, ThreadId};

/// Params that address a thread say which.
pub(super) trait Addressed {
    fn thread_id(&self) -> Option<&ThreadId> {
        None
    }
}

macro_rules! addressed {
    ($($params:ty),*) => {
        $(impl Addressed for $params {
            fn thread_id(&self) -> Option<&ThreadId> {
                Some(&self.thread_id)
            }
        })*
    };
}

addressed!(
    AddUserMessageParams,
    AddClientToolOutputParams,
    RetryAfterItemParams,
    CustomActionParams,
    AddStructuredInputParams,
    ThreadIdParams,
    ListItemsParams,
    UpdateThreadParams,
    FeedbackParams
);
impl Addressed for CreateThreadParams {}
impl Addressed for ListThreadsParams {}
impl Addressed for CreateAttachmentParams {}
impl Addressed for DeleteAttachmentParams {}
impl Addressed for TranscribeParams {}

/// `UserMessageInput` (protocol §3.1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UserMessageInput {
    pub content: Vec<UserMessageContent>,
    pub attachments: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quoted_text: Option<String>,
    pub inference_options: InferenceOptions,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CreateThreadParams {
    pub input: UserMessageInput,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AddUserMessageParams {
    pub thread_id: ThreadId,
    pub input: UserMessageInput,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AddClientToolOutputParams {
    pub thread_id: ThreadId,
    /// Any JSON, `null` included; a missing key is refused.
    #[serde(deserialize_with = "present_value")]
    pub result: Value,
}

/// Deserializes any value including `null` (serde would otherwise treat null as absent).
fn present_value<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
    Value::deserialize(d)
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RetryAfterItemParams {
    pub thread_id: ThreadId,
    pub item_id: ItemId,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CustomAction {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub payload: Value,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CustomActionParams {
    pub thread_id: ThreadId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_id: Option<ItemId>,
    pub action: CustomAction,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AddStructuredInputParams {
    pub thread_id: ThreadId,
    pub item_id: ItemId,
    pub input: StructuredInputSubmission,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ThreadIdParams {
    pub thread_id: ThreadId,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ListThreadsParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
    #[serde(default)]
    pub order: Order,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<ThreadId>,
}

impl ListThreadsParams {
    pub fn page_size(&self) -> Result<u32, String> {
        page_size(self.limit)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ListItemsParams {
    pub thread_id: ThreadId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
    #[serde(default)]
    pub order: Order,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<ItemId>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UpdateThreadParams {
    pub thread_id: ThreadId,
    pub title: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FeedbackKind {
    Positive,
    Negative,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeedbackParams {
    pub thread_id: ThreadId,
    pub item_ids: Vec<ItemId>,
    pub kind: FeedbackKind,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CreateAttachmentParams {
    pub name: String,
    pub size: i64,
    pub mime_type: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeleteAttachmentParams {
    pub attachment_id: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TranscribeParams {
    pub audio_base64: String,
    pub mime_type: String,
}
