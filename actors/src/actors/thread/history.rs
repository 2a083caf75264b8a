//! A thread as its actor holds it: metadata and the newest items (hidden ones included,
//! oldest first, at most `history_limit`), loaded from Postgres and kept in step with what
//! each turn committed.

use crate::actors::env::EngineEnv;
use crate::actors::turn::{put_or_append, TurnChanges};
use crate::error::EngineError;
use crate::ids::{ItemId, ThreadId};
use crate::protocol::{Order, ThreadItem, ThreadMeta};

pub(crate) struct LoadedThread {
    pub meta: ThreadMeta,
    /// The newest items, oldest first, at most `history_limit`.
    pub history: Vec<ThreadItem>,
    /// False for a thread created here whose first write has not committed yet.
    pub persisted: bool,
}

impl LoadedThread {
    /// The thread from Postgres, or `None` if it does not exist.
    pub async fn load(
        env: &EngineEnv,
        thread_id: &ThreadId,
    ) -> Result<Option<LoadedThread>, EngineError> {
        let Some(meta) = env.store.load_thread(thread_id.as_str()).await? else {
            return Ok(None);
        };
        let history = newest_items(env, thread_id).await?;
        Ok(Some(LoadedThread {
            meta,
            history,
            persisted: true,
        }))
    }

    /// Applies what a turn committed; answers whether the window shrank below the limit (a
    /// retry removed items), so older items should be loaded into it again.
    pub fn apply(&mut self, changes: &mut TurnChanges, limit: usize) -> bool {
        if self.meta.title.is_none() {
            self.meta.title = changes.title.take();
        }
        self.history
            .retain(|i| !changes.removed_ids.contains(&i.id));
        for item in changes.committed.drain(..) {
            self.put(item);
        }
        let excess = self.history.len().saturating_sub(limit);
        self.history.drain(..excess);
        !changes.removed_ids.is_empty() && self.history.len() < limit
    }

    /// Puts a committed item in the window: in place of the item with its id, or at the end.
    pub fn put(&mut self, item: ThreadItem) {
        put_or_append(&mut self.history, item);
    }

    /// A retry target memory cannot tell about: the window is full (the thread may be
    /// longer) and the id is not in it.
    pub fn may_hold_older(&self, item_id: &ItemId, limit: usize) -> bool {
        self.history.len() >= limit && !self.history.iter().any(|i| *item_id == i.id)
    }
}

/// The newest `history_limit` items of a thread, oldest first.
pub(crate) async fn newest_items(
    env: &EngineEnv,
    thread_id: &ThreadId,
) -> Result<Vec<ThreadItem>, EngineError> {
    Ok(env
        .store
        .recent_items(thread_id.as_str(), env.settings.history_limit)
        .await?)
}

/// The window of history that ends at `item_id` (for a retry further back than memory), or
/// `None` if the thread has no such item.
pub(crate) async fn window_ending_at(
    env: &EngineEnv,
    thread_id: &ThreadId,
    item_id: &ItemId,
) -> Result<Option<Vec<ThreadItem>>, EngineError> {
    let store = &env.store;
    let Some(target) = store
        .load_item(thread_id.as_str(), item_id.as_str())
        .await?
    else {
        return Ok(None);
    };
    let limit = env.settings.history_limit.saturating_sub(1).max(1);
    let before = store
        .list_items(
            thread_id.as_str(),
            limit,
            Order::Desc,
            Some(item_id.as_str()),
        )
        .await?;
    let mut window = before
        .data
        .iter()
        .rev()
        .map(|i| i.parse())
        .collect::<Result<Vec<_>, _>>()?;
    window.push(target.parse()?);
    Ok(Some(window))
}
