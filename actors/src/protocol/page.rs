//! `Page<T>` (protocol §2.1) and the paging parameters shared by `threads.list` and `items.list`.

use serde::{Deserialize, Serialize};

/// One page of a list; `after` is the id of the last record, present only when `has_more`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    #[serde(default = "Vec::new")]
    pub data: Vec<T>,
    #[serde(default)]
    pub has_more: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

impl<T> Page<T> {
    pub fn empty() -> Self {
        Page {
            data: Vec::new(),
            has_more: false,
            after: None,
        }
    }
}

impl<T> Default for Page<T> {
    fn default() -> Self {
        Self::empty()
    }
}

/// Sort order of a list (protocol §3.9, §3.10); `desc` is the default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    Asc,
    #[default]
    Desc,
}

/// `DEFAULT_PAGE_SIZE` of the reference.
pub const DEFAULT_PAGE_SIZE: u32 = 20;
/// Largest page we serve (the reference peer answers 400 above 1000).
pub const MAX_PAGE_SIZE: u32 = 1000;
