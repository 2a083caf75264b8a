//! Widget actions (protocol §3.5, §3.6; `specs/widgets.md`): the request is checked against
//! the configuration here (an item id, a mapped type, an object payload), then the thread's
//! actor checks it against the sender widget and runs it.

use serde_json::Value;

use super::{Engine, Requester};
use crate::actors::thread::{SyncAction, WidgetAction};
use crate::error::EngineError;
use crate::ids::{ItemId, ThreadId};
use crate::protocol::requests::CustomAction;
use crate::protocol::ThreadItem;
use crate::text::shorten_for_display;
use crate::trace::TraceContext;

impl Engine {
    /// `threads.sync_custom_action`: the action's tool runs; answers with the replaced item.
    pub async fn sync_custom_action(
        &self,
        who: &Requester,
        thread_id: &ThreadId,
        item_id: Option<ItemId>,
        action: CustomAction,
    ) -> Result<Option<ThreadItem>, EngineError> {
        let action = who
            .deadline
            .scope(self.widget_action(thread_id, item_id, action))
            .await?;
        let sync = SyncAction {
            user_id: who.user_id.clone(),
            token: who.token.clone(),
            deadline: who.deadline,
            trace: TraceContext::current(),
            action,
        };
        self.to_thread(thread_id, sync).await
    }

    pub(super) async fn widget_action(
        &self,
        thread_id: &ThreadId,
        item_id: Option<ItemId>,
        action: CustomAction,
    ) -> Result<WidgetAction, EngineError> {
        let item_id = item_id.ok_or_else(|| {
            EngineError::InvalidInput(
                "item_id is required: this server runs actions of widgets only".into(),
            )
        })?;
        let spec = self
            .env
            .settings
            .widgets
            .actions
            .get(&action.kind)
            .cloned()
            .ok_or_else(|| {
                EngineError::UnknownAction(format!(
                    "no tool handles the action type {:?}",
                    shorten_for_display(&action.kind, 64)
                ))
            })?;
        if !matches!(action.payload, Value::Null | Value::Object(_)) {
            return Err(EngineError::InvalidInput(
                "action.payload must be an object or null".into(),
            ));
        }
        // The sender as stored, for when it is older than the actor's window; the actor checks
        // the caller owns the thread before looking at it.
        let stored_sender = match self
            .env
            .store
            .load_item(thread_id.as_str(), item_id.as_str())
            .await?
        {
            Some(stored) if !stored.is_hidden() => Some(stored.parse()?),
            _ => None,
        };
        Ok(WidgetAction {
            item_id,
            action_type: action.kind,
            payload: action.payload,
            spec,
            stored_sender,
        })
    }
}
