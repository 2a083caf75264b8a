//! A widget streamed while its tool runs (protocol §8.13), the one way for tool rounds and
//! widget actions: announced with `thread.item.added` (or already shown, for an action's
//! sender), updated by diffs, then committed and announced, withdrawn when its tool failed,
//! or put back as it was.

use serde_json::Value;

use super::events::EventWriter;
use super::run::{Ended, TurnRun};
use crate::ids::{prefix, ItemId, ThreadId};
use crate::protocol::{
    ItemBody, ThreadItem, ThreadItemUpdate, ThreadStreamEvent, Timestamp, WidgetItem,
};
use crate::store::cluster::LeaseState;
use crate::widgets::{diff_widget, ToolWidget};

/// A widget being streamed while its tool runs (protocol §8.13): announced with
/// `thread.item.added`, then updated.
#[derive(Clone, Debug)]
pub(super) struct StreamedWidget {
    pub id: ItemId,
    pub created_at: Timestamp,
    /// The state the client has.
    pub state: Value,
}

/// A widget item of the thread.
pub(super) fn widget_item(
    thread_id: &ThreadId,
    id: ItemId,
    created_at: Timestamp,
    widget: ToolWidget,
) -> ThreadItem {
    ThreadItem {
        id,
        thread_id: thread_id.clone(),
        created_at,
        body: ItemBody::Widget(WidgetItem {
            widget: widget.widget,
            copy_text: widget.copy_text,
        }),
    }
}

/// Shows a tool's new widget state: the first announces the item, later ones are diffed
/// against what the client has.
pub(super) async fn show_widget_state(
    writer: &mut EventWriter<'_>,
    thread_id: &ThreadId,
    floor: &mut Option<Timestamp>,
    streamed: &mut Option<StreamedWidget>,
    state: Value,
) {
    match streamed {
        None => {
            let created_at = Timestamp::now_after(*floor);
            *floor = Some(created_at);
            let id = ItemId::generate(prefix::MESSAGE);
            let widget = ToolWidget {
                widget: state.clone(),
                copy_text: None,
            };
            let item = widget_item(thread_id, id.clone(), created_at, widget);
            writer.send(&ThreadStreamEvent::ItemAdded { item }).await;
            *streamed = Some(StreamedWidget {
                id,
                created_at,
                state,
            });
        }
        Some(shown) => {
            for update in diff_widget(&shown.state, &state) {
                let event = ThreadStreamEvent::ItemUpdated {
                    item_id: shown.id.clone(),
                    update,
                };
                writer.send(&event).await;
            }
            shown.state = state;
        }
    }
}

impl TurnRun<'_> {
    /// Commits a streamed widget in its final state (the result's widget, or the last
    /// progress state) and announces it, after the updates that lead there.
    pub(super) async fn finish_streamed_widget(
        &mut self,
        streamed: StreamedWidget,
        widget: Option<ToolWidget>,
    ) -> Result<(), Ended> {
        let last = ToolWidget {
            widget: streamed.state.clone(),
            copy_text: None,
        };
        let last = widget.unwrap_or(last);
        for update in diff_widget(&streamed.state, &last.widget) {
            let event = ThreadStreamEvent::ItemUpdated {
                item_id: streamed.id.clone(),
                update,
            };
            self.writer.send(&event).await;
        }
        let item = widget_item(&self.thread_id, streamed.id, streamed.created_at, last);
        self.commit_and_announce(item, LeaseState::Streaming).await
    }

    /// A streamed widget whose tool failed: the client drops it (nothing was stored).
    pub(super) async fn withdraw_widget(&mut self, streamed: StreamedWidget) {
        let event = ThreadStreamEvent::ItemRemoved {
            item_id: streamed.id,
        };
        self.writer.send(&event).await;
    }

    /// Puts the client's copy of a widget item back to its stored state.
    pub(super) async fn restore_widget(&mut self, item_id: &ItemId, original: &Value) {
        let event = ThreadStreamEvent::ItemUpdated {
            item_id: item_id.clone(),
            update: ThreadItemUpdate::WidgetRootUpdated {
                widget: original.clone(),
            },
        };
        self.writer.send(&event).await;
    }
}
