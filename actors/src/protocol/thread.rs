//! Threads as stored (`ThreadMeta`) and as sent (`Thread`, protocol §2.2).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::items::ThreadItem;
use super::page::Page;
use super::time::Timestamp;
use crate::ids::{ThreadId, UserId};

/// protocol §2.2 `ThreadStatus`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ThreadStatus {
    #[default]
    Active,
    Locked {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    Closed {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
}

/// What we store about a thread. `user_id` is the owner; it never goes on the wire.
#[derive(Clone, Debug, PartialEq)]
pub struct ThreadMeta {
    pub id: ThreadId,
    pub user_id: UserId,
    pub created_at: Timestamp,
    pub title: Option<String>,
    pub status: ThreadStatus,
    pub allowed_image_domains: Option<Vec<String>>,
    /// Server-private metadata; the wire form always carries `{}` (protocol §1.5).
    pub metadata: Map<String, Value>,
}

impl ThreadMeta {
    pub fn new(id: ThreadId, user_id: UserId, created_at: Timestamp) -> Self {
        ThreadMeta {
            id,
            user_id,
            created_at,
            title: None,
            status: ThreadStatus::Active,
            allowed_image_domains: None,
            metadata: Map::new(),
        }
    }

    /// The wire form with the given items page (empty everywhere but `threads.get_by_id`).
    pub fn to_wire<I>(&self, items: Page<I>) -> Thread<I> {
        Thread {
            title: self.title.clone(),
            id: self.id.to_string(),
            created_at: self.created_at,
            status: self.status.clone(),
            allowed_image_domains: self.allowed_image_domains.clone(),
            metadata: Map::new(),
            items,
        }
    }
}

/// protocol §2.2 wire form, keys in this order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Thread<I = ThreadItem> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub id: String,
    pub created_at: Timestamp,
    #[serde(default)]
    pub status: ThreadStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_image_domains: Option<Vec<String>>,
    #[serde(default)]
    pub metadata: Map<String, Value>,
    #[serde(default = "Page::empty")]
    pub items: Page<I>,
}
