//! A widget action's turn (`specs/widgets.md`, "Actions"): the mapped tool runs on the
//! thread's MCP session (the caller's token on the transport); its widget replaces the sender
//! and a hidden context item records what happened, in one transaction; a model turn may
//! follow. A failing tool writes nothing.

use std::sync::Arc;
use std::time::Instant;

use serde_json::{Map, Value};
use tokio::sync::mpsc;

use super::agent::{Ended, TurnRun};
use super::tools::{StreamedWidget, PROGRESS_BUFFER};
use super::ACTION_FAILED;
use super::{PlannedAction, WidgetAction};
use crate::actors::env::{EngineEnv, Lease};
use crate::error::EngineError;
use crate::ids::{new_id, prefix, BearerToken};
use crate::mcp::{McpSessions, ToolResult};
use crate::metrics::METRICS;
use crate::model::history_messages;
use crate::protocol::{
    HiddenContextItem, ItemBody, ThreadItem, ThreadItemUpdate, ThreadStreamEvent, Timestamp,
    WidgetItem,
};
use crate::store::cluster::LeaseState;
use crate::store::WriteOp;
use crate::text::clip_chars;
use crate::widgets::{diff_widget, progress_widget, tool_extras, ToolWidget};

/// What the hidden record keeps of the payload and of the tool's text, at most.
const MAX_RECORD_CHARS: usize = 4000;

/// The hidden context item that tells the model about an action, on every later turn.
fn action_record(
    action: &WidgetAction,
    sender: &ThreadItem,
    result: &ToolResult,
    created_at: Timestamp,
) -> ThreadItem {
    let payload = action.payload.to_string();
    let (payload, _) = clip_chars(&payload, MAX_RECORD_CHARS);
    let (output, _) = clip_chars(result.output.text(), MAX_RECORD_CHARS);
    let record = format!(
        "The user performed the action {:?} with payload {payload} on widget {}. The tool {} returned: {output}",
        action.action_type, sender.id, action.spec.tool
    );
    ThreadItem {
        id: new_id(prefix::MESSAGE),
        thread_id: sender.thread_id.clone(),
        created_at,
        body: ItemBody::HiddenContext(HiddenContextItem {
            content: Value::String(record),
        }),
    }
}

/// The sender with its new widget (same id and `created_at`), if there is one.
fn replaced_sender(sender: &ThreadItem, widget: Option<ToolWidget>) -> Option<ThreadItem> {
    let ItemBody::Widget(old) = &sender.body else {
        return None;
    };
    let widget = widget?;
    Some(ThreadItem {
        body: ItemBody::Widget(WidgetItem {
            widget: widget.widget,
            copy_text: widget.copy_text.or_else(|| old.copy_text.clone()),
        }),
        ..sender.clone()
    })
}

/// What a sync action committed: the replaced sender (if any) and the hidden record.
pub(crate) struct SyncActionDone {
    pub replaced: Option<ThreadItem>,
    pub record: ThreadItem,
}

/// Protocol §3.6: runs a widget action's tool on a session of its own (a turn may be using
/// the thread's), commits the replaced sender and the record, and answers with them.
pub(crate) async fn run_sync_action(
    env: Arc<EngineEnv>,
    lease: Lease,
    state: LeaseState,
    sender: ThreadItem,
    action: WidgetAction,
    token: Option<BearerToken>,
    floor: Option<Timestamp>,
) -> Result<SyncActionDone, EngineError> {
    let spec = &action.spec;
    let failed = || EngineError::ActionFailed(ACTION_FAILED.into());
    let server = env
        .settings
        .agent
        .mcp_servers
        .iter()
        .find(|s| s.name == spec.tool.server)
        .ok_or_else(failed)?;
    let mut sessions = McpSessions::new(env.tool_catalog.clone());
    let arguments = match &action.payload {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    let started = Instant::now();
    let called = match sessions.ensure_open(server, token.as_ref()).await {
        Ok(()) => sessions
            .call_with(server, &spec.tool.tool, arguments, None)
            .await
            .map_err(|e| e.to_string()),
        Err(error) => Err(error.to_string()),
    };
    actix::spawn(sessions.close());
    METRICS
        .mcp_call_seconds
        .with_label_values(&[server.name.as_str()])
        .observe(started.elapsed().as_secs_f64());
    let result = match called {
        Ok(result) if !result.output.failed() => result,
        Ok(result) => {
            tracing::warn!(thread_id = %sender.thread_id, tool = %spec.tool, error = %result.output.text(), "widget action's tool failed");
            METRICS.widget_actions.with_label_values(&["failed"]).inc();
            return Err(failed());
        }
        Err(error) => {
            tracing::warn!(thread_id = %sender.thread_id, %error, "tool server failed");
            METRICS
                .mcp_errors
                .with_label_values(&[server.name.as_str()])
                .inc();
            METRICS.widget_actions.with_label_values(&["failed"]).inc();
            return Err(failed());
        }
    };
    let extras = tool_extras(&result, server, &spec.tool.tool, &env.settings.widgets);
    let replaced = if spec.then.replaces() {
        replaced_sender(&sender, extras.widget)
    } else {
        None
    };
    let record = action_record(&action, &sender, &result, Timestamp::now_after(floor));
    let mut ops: Vec<WriteOp> = replaced.iter().map(WriteOp::put_item).collect();
    ops.push(WriteOp::put_item(&record));
    env.persist_as(&lease, state, ops).await?;
    let outcome = if replaced.is_some() {
        "replaced"
    } else {
        "recorded"
    };
    METRICS.widget_actions.with_label_values(&[outcome]).inc();
    Ok(SyncActionDone { replaced, record })
}

impl TurnRun<'_> {
    /// Runs the action's tool, stores what it changed, and answers with the model if the
    /// action says so.
    pub(super) async fn widget_action(
        &mut self,
        planned: PlannedAction,
        instructions: &str,
    ) -> Ended {
        let PlannedAction {
            sender,
            action,
            mut history,
            history_limit,
        } = planned;
        let spec = action.spec.clone();
        let env = self.env.clone();
        let Some(server) = env
            .settings
            .agent
            .mcp_servers
            .iter()
            .find(|s| s.name == spec.tool.server)
        else {
            return Ended::ActionFailed;
        };
        let ItemBody::Widget(sender_widget) = &sender.body else {
            return Ended::ActionFailed;
        };
        if let Err(error) = self.mcp.ensure_open(server, self.token.as_ref()).await {
            tracing::warn!(thread_id = %self.thread_id, %error, "tool server failed");
            METRICS
                .mcp_errors
                .with_label_values(&[server.name.as_str()])
                .inc();
            METRICS.widget_actions.with_label_values(&["failed"]).inc();
            return Ended::ActionFailed;
        }
        let arguments = match &action.payload {
            Value::Object(map) => map.clone(),
            _ => Map::new(),
        };
        // Progress states update the sender while the tool runs (when it is to be replaced).
        let mut shown = StreamedWidget {
            id: sender.id.clone(),
            created_at: sender.created_at,
            state: sender_widget.widget.clone(),
        };
        let (sink, mut states) = mpsc::channel(PROGRESS_BUFFER);
        let sink = spec.then.replaces().then_some(sink);
        let started = Instant::now();
        let result = {
            let call = self.mcp.call_with(server, &spec.tool.tool, arguments, sink);
            tokio::pin!(call);
            loop {
                tokio::select! {
                    result = &mut call => break result,
                    Some(meta) = states.recv() => {
                        if let Some(state) = progress_widget(&meta) {
                            for update in diff_widget(&shown.state, &state) {
                                let event = ThreadStreamEvent::ItemUpdated { item_id: shown.id.clone(), update };
                                self.writer.send(&event).await;
                            }
                            shown.state = state;
                        }
                    }
                }
            }
        };
        METRICS
            .mcp_call_seconds
            .with_label_values(&[server.name.as_str()])
            .observe(started.elapsed().as_secs_f64());
        let result: ToolResult = match result {
            Ok(result) if !result.output.failed() => result,
            Ok(result) => {
                tracing::warn!(thread_id = %self.thread_id, tool = %spec.tool, error = %result.output.text(), "widget action's tool failed");
                return self.action_failed(&shown, &sender_widget.widget).await;
            }
            Err(error) => {
                tracing::warn!(thread_id = %self.thread_id, %error, "tool server failed");
                METRICS
                    .mcp_errors
                    .with_label_values(&[server.name.as_str()])
                    .inc();
                self.mcp.forget(&server.name);
                return self.action_failed(&shown, &sender_widget.widget).await;
            }
        };
        let extras = tool_extras(&result, server, &spec.tool.tool, &env.settings.widgets);
        let replaced = if spec.then.replaces() {
            let streamed = (shown.state != sender_widget.widget).then(|| ToolWidget {
                widget: shown.state.clone(),
                copy_text: None,
            });
            replaced_sender(&sender, extras.widget.or(streamed))
        } else {
            None
        };
        let created_at = self.next_timestamp();
        let hidden = action_record(&action, &sender, &result, created_at);
        let mut ops: Vec<WriteOp> = replaced.iter().map(WriteOp::put_item).collect();
        ops.push(WriteOp::put_item(&hidden));
        let state = if spec.then.responds() {
            LeaseState::Streaming
        } else {
            LeaseState::Idle
        };
        if let Err(error) = self.env.persist_as(&self.lease, state, ops).await {
            tracing::warn!(thread_id = %self.thread_id, %error, "could not commit a widget action");
            return Ended::CommitFailed;
        }
        let outcome = if replaced.is_some() {
            "replaced"
        } else {
            "recorded"
        };
        METRICS.widget_actions.with_label_values(&[outcome]).inc();
        if let Some(replaced) = &replaced {
            let event = ThreadStreamEvent::ItemReplaced {
                item: replaced.clone(),
            };
            self.writer.send(&event).await;
        } else if shown.state != sender_widget.widget {
            self.restore(&sender.id, &sender_widget.widget).await;
        }
        for event in &extras.events {
            self.writer.send(event).await;
        }
        for item in replaced.iter().chain([&hidden]) {
            match history.iter_mut().find(|i| i.id == item.id) {
                Some(existing) => *existing = item.clone(),
                None => history.push(item.clone()),
            }
        }
        self.committed.extend(replaced);
        self.committed.push(hidden);
        if !spec.then.responds() {
            return Ended::Answered;
        }
        let skip = history.len().saturating_sub(history_limit);
        let input = history_messages(instructions, &history[skip..]);
        match self.open_first_round(&input).await {
            Ok(head) => self.agent(input, head).await,
            Err(ended) => ended,
        }
    }

    /// The tool failed: the sender goes back to what it was (if progress changed it).
    async fn action_failed(&mut self, shown: &StreamedWidget, original: &Value) -> Ended {
        METRICS.widget_actions.with_label_values(&["failed"]).inc();
        if &shown.state != original {
            self.restore(&shown.id, original).await;
        }
        Ended::ActionFailed
    }

    /// Puts the client's copy of the sender back to its stored state.
    async fn restore(&mut self, item_id: &str, original: &Value) {
        let event = ThreadStreamEvent::ItemUpdated {
            item_id: item_id.to_string(),
            update: ThreadItemUpdate::WidgetRootUpdated {
                widget: original.clone(),
            },
        };
        self.writer.send(&event).await;
    }
}
