//! The reads: `threads.get_by_id`, `threads.list`, `items.list`, and `items.feedback` (which
//! only needs the thread's ownership). They go straight to Postgres, which is authoritative
//! because every announced item was committed before its event left.

use serde_json::value::RawValue;

use super::Engine;
use crate::attachments::PublicOrigin;
use crate::error::EngineError;
use crate::ids::{ThreadId, UserId};
use crate::protocol::requests::{
    page_size, FeedbackKind, FeedbackParams, ListItemsParams, ListThreadsParams,
};
use crate::protocol::{ItemBody, Order, Page, Thread, ThreadMeta};
use crate::store::{StoredItem, WriteOp};

impl Engine {
    /// Ownership check for reads: the thread's metadata if `user_id` may see it. Another
    /// user's thread answers exactly like one that does not exist.
    async fn visible_thread(
        &self,
        user_id: &UserId,
        thread_id: &ThreadId,
    ) -> Result<ThreadMeta, EngineError> {
        self.env
            .store
            .load_user_thread(user_id.as_str(), thread_id.as_str())
            .await?
            .ok_or(EngineError::ThreadNotFound)
    }

    /// `threads.get_by_id`: the thread with its oldest 20 visible items (protocol §3.8).
    /// `origin` is where the browser reaches this server (fresh attachment preview URLs).
    pub async fn get_thread(
        &self,
        user_id: &UserId,
        thread_id: &ThreadId,
        origin: &PublicOrigin,
    ) -> Result<Thread<Box<RawValue>>, EngineError> {
        let first_page = page_size(None).map_err(EngineError::InvalidInput)?;
        let (meta, items) = self
            .visible_items(user_id, thread_id, first_page, Order::Asc, None, origin)
            .await?;
        Ok(meta.to_wire(items))
    }

    /// `threads.list` (protocol §3.9).
    pub async fn list_threads(
        &self,
        user_id: &UserId,
        params: &ListThreadsParams,
    ) -> Result<Page<Thread>, EngineError> {
        let limit = params.page_size().map_err(EngineError::InvalidInput)?;
        let after = params.after.as_ref().map(ThreadId::as_str);
        let page = self
            .env
            .store
            .list_threads(user_id.as_str(), limit, params.order, after)
            .await?;
        Ok(Page {
            data: page.data.iter().map(|t| t.to_wire(Page::empty())).collect(),
            has_more: page.has_more,
            after: page.after,
        })
    }

    /// `items.list` (protocol §3.10): hidden items filtered after paging.
    pub async fn list_items(
        &self,
        user_id: &UserId,
        params: &ListItemsParams,
        origin: &PublicOrigin,
    ) -> Result<Page<Box<RawValue>>, EngineError> {
        let limit = page_size(params.limit).map_err(EngineError::InvalidInput)?;
        let after = params.after.as_ref().map(|id| id.as_str());
        let (_, page) = self
            .visible_items(
                user_id,
                &params.thread_id,
                limit,
                params.order,
                after,
                origin,
            )
            .await?;
        Ok(page)
    }

    /// The user's thread and a page of its visible items (ownership checked on the same read).
    async fn visible_items(
        &self,
        user_id: &UserId,
        thread_id: &ThreadId,
        limit: u32,
        order: Order,
        after: Option<&str>,
        origin: &PublicOrigin,
    ) -> Result<(ThreadMeta, Page<Box<RawValue>>), EngineError> {
        let (meta, page) = self
            .env
            .store
            .user_thread_items(user_id.as_str(), thread_id.as_str(), limit, order, after)
            .await?
            .ok_or(EngineError::ThreadNotFound)?;
        let data = page
            .data
            .iter()
            .filter(|item| !item.is_hidden())
            .map(|item| self.item_json(item, origin))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((
            meta,
            Page {
                data,
                has_more: page.has_more,
                after: page.after,
            },
        ))
    }

    /// An item's stored JSON, byte for byte, except that image attachments and generated
    /// images get URLs valid now (the stored ones expire) for this origin.
    fn item_json(
        &self,
        item: &StoredItem,
        origin: &PublicOrigin,
    ) -> Result<Box<RawValue>, EngineError> {
        let has_url = match item.kind.as_str() {
            "user_message" => item.body.contains("\"preview_url\""),
            "generated_image" => item.body.contains("\"url\""),
            _ => false,
        };
        if !has_url {
            return Ok(item.raw_json()?);
        }
        let mut parsed = item.parse()?;
        match &mut parsed.body {
            ItemBody::UserMessage(message) => {
                for attachment in &mut message.attachments {
                    self.refresh_preview(attachment, origin);
                }
            }
            ItemBody::GeneratedImage(generated) => {
                if let Some(image) = &mut generated.image {
                    self.refresh_generated(image, origin);
                }
            }
            _ => {}
        }
        let json =
            serde_json::to_string(&parsed).map_err(|e| EngineError::Internal(e.to_string()))?;
        RawValue::from_string(json).map_err(|e| EngineError::Internal(e.to_string()))
    }

    /// `items.feedback`: recorded for the thread's owner; item ids are not checked
    /// (protocol §13.19).
    pub async fn feedback(
        &self,
        user_id: &UserId,
        params: &FeedbackParams,
    ) -> Result<(), EngineError> {
        self.visible_thread(user_id, &params.thread_id).await?;
        let kind = match params.kind {
            FeedbackKind::Positive => "positive",
            FeedbackKind::Negative => "negative",
        };
        self.env
            .persist(vec![WriteOp::Feedback {
                thread_id: params.thread_id.clone(),
                user_id: user_id.clone(),
                item_ids: params.item_ids.clone(),
                kind: kind.to_string(),
            }])
            .await
    }
}
