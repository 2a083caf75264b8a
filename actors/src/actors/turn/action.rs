//! A widget action's turn (`specs/widgets.md`, "Actions"): the mapped tool runs on the
//! thread's MCP session (the caller's token on the transport); its widget replaces the sender
//! and a hidden context item records what happened, in one transaction; a model turn may
//! follow. A failing tool writes nothing.

use std::sync::Arc;

use serde_json::{Map, Value};
use tokio::sync::mpsc;

use super::invoke::{call_tool, forget_broken, open_session, Caller, ToolTarget};
use super::run::{Ended, TurnRun};
use super::tools::PROGRESS_BUFFER;
use super::widget_stream::{show_widget_state, StreamedWidget};
use super::ACTION_FAILED;
use super::{put_or_append, PlannedAction, WidgetAction};
use crate::actors::env::{EngineEnv, Lease};
use crate::error::EngineError;
use crate::ids::{prefix, BearerToken, ItemId};
use crate::mcp::{McpServerConfig, McpSessions, ToolResult};
use crate::metrics::METRICS;
use crate::model::history_messages;
use crate::protocol::{
    HiddenContextItem, ItemBody, ThreadItem, ThreadStreamEvent, Timestamp, WidgetItem,
};
use crate::store::cluster::LeaseState;
use crate::store::WriteOp;
use crate::text::clip_chars;
use crate::widgets::{progress_widget, tool_extras, ToolWidget};

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
        id: ItemId::generate(prefix::MESSAGE),
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
    let server = action_server(&env, &action).ok_or_else(failed)?;
    let target = ToolTarget {
        server,
        tool: &spec.tool.tool,
    };
    let mut sessions = McpSessions::new(env.tool_catalog.clone());
    let thread_id = &sender.thread_id;
    let caller = Caller {
        thread_id,
        health: &env.mcp_health,
    };
    let called = match open_session(&mut sessions, server, token.as_ref(), caller).await {
        Ok(()) => call_tool(&sessions, target, arguments_of(&action), None, caller).await,
        Err(error) => Err(error),
    };
    actix::spawn(sessions.close());
    let result = match called {
        Ok(result) if !result.output.failed() => result,
        Ok(result) => {
            tracing::warn!(%thread_id, tool = %spec.tool, error = %result.output.text(), "widget action's tool failed");
            METRICS.widget_actions.with_label_values(&["failed"]).inc();
            return Err(failed());
        }
        Err(_) => {
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
    count_action(replaced.is_some());
    Ok(SyncActionDone { replaced, record })
}

/// The configured server of the action's tool.
fn action_server<'e>(env: &'e EngineEnv, action: &WidgetAction) -> Option<&'e McpServerConfig> {
    env.settings
        .agent
        .mcp_servers
        .iter()
        .find(|s| s.name == action.spec.tool.server)
}

/// The payload as the tool's arguments (a null payload: none).
fn arguments_of(action: &WidgetAction) -> Map<String, Value> {
    match &action.payload {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    }
}

fn count_action(replaced: bool) {
    let outcome = if replaced { "replaced" } else { "recorded" };
    METRICS.widget_actions.with_label_values(&[outcome]).inc();
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
        let ItemBody::Widget(sender_widget) = &sender.body else {
            return Ended::ActionFailed;
        };
        let original = sender_widget.widget.clone();
        let (result, shown) = match self.run_action_tool(&sender, &action).await {
            Ok(ran) => ran,
            Err(shown) => return self.action_failed(shown, &sender.id, &original).await,
        };
        let committed = match self.commit_action(&sender, &action, &result, &shown).await {
            Ok(committed) => committed,
            Err(ended) => return ended,
        };
        for item in committed {
            put_or_append(&mut history, item.clone());
            self.committed.push(item);
        }
        if !action.spec.then.responds() {
            return Ended::Answered;
        }
        let skip = history.len().saturating_sub(history_limit);
        let mut input = history_messages(instructions, &history[skip..]);
        match self.open_first_round(&mut input).await {
            Ok(head) => self.agent(input, head).await,
            Err(ended) => ended,
        }
    }

    /// Calls the action's tool on the thread's session; its progress states update the
    /// sender while it runs (when it is to be replaced). Answers the result and the sender's
    /// state as the client has it; `Err` with that state when the tool or its server failed.
    async fn run_action_tool(
        &mut self,
        sender: &ThreadItem,
        action: &WidgetAction,
    ) -> Result<(ToolResult, Value), Value> {
        let ItemBody::Widget(sender_widget) = &sender.body else {
            return Err(Value::Null);
        };
        let mut shown = Some(StreamedWidget {
            id: sender.id.clone(),
            created_at: sender.created_at,
            state: sender_widget.widget.clone(),
        });
        let shown_state = |shown: Option<StreamedWidget>| shown.map_or(Value::Null, |s| s.state);
        let env = self.env.clone();
        let Some(server) = action_server(&env, action) else {
            return Err(shown_state(shown));
        };
        let token = self.token.clone();
        let thread_id = self.thread_id.clone();
        let caller = Caller {
            thread_id: &thread_id,
            health: &env.mcp_health,
        };
        if open_session(&mut self.mcp, server, token.as_ref(), caller)
            .await
            .is_err()
        {
            return Err(shown_state(shown));
        }
        let target = ToolTarget {
            server,
            tool: &action.spec.tool.tool,
        };
        let (sink, mut states) = mpsc::channel(PROGRESS_BUFFER);
        let sink = action.spec.then.replaces().then_some(sink);
        let result = {
            let call = call_tool(&self.mcp, target, arguments_of(action), sink, caller);
            tokio::pin!(call);
            loop {
                tokio::select! {
                    result = &mut call => break result,
                    Some(meta) = states.recv() => {
                        if let Some(state) = progress_widget(&meta) {
                            let (writer, floor) = (&mut self.writer, &mut self.floor);
                            show_widget_state(writer, &self.thread_id, floor, &mut shown, state).await;
                        }
                    }
                }
            }
        };
        match result {
            Ok(result) if !result.output.failed() => Ok((result, shown_state(shown))),
            Ok(result) => {
                tracing::warn!(thread_id = %self.thread_id, tool = %action.spec.tool, error = %result.output.text(), "widget action's tool failed");
                Err(shown_state(shown))
            }
            Err(_) => {
                forget_broken(&mut self.mcp, server);
                Err(shown_state(shown))
            }
        }
    }

    /// In one transaction the sender with its new widget (the result's, or the last progress
    /// state) and the hidden record; then `thread.item.replaced` (or the sender put back),
    /// the result's effects and notices. Answers what was committed.
    async fn commit_action(
        &mut self,
        sender: &ThreadItem,
        action: &WidgetAction,
        result: &ToolResult,
        shown: &Value,
    ) -> Result<Vec<ThreadItem>, Ended> {
        let ItemBody::Widget(sender_widget) = &sender.body else {
            return Err(Ended::ActionFailed);
        };
        let spec = &action.spec;
        let env = self.env.clone();
        let server = action_server(&env, action).ok_or(Ended::ActionFailed)?;
        let extras = tool_extras(result, server, &spec.tool.tool, &env.settings.widgets);
        let changed = shown != &sender_widget.widget;
        let replaced = if spec.then.replaces() {
            let streamed = changed.then(|| ToolWidget {
                widget: shown.clone(),
                copy_text: None,
            });
            replaced_sender(sender, extras.widget.or(streamed))
        } else {
            None
        };
        let created_at = self.next_timestamp();
        let hidden = action_record(action, sender, result, created_at);
        let mut ops: Vec<WriteOp> = replaced.iter().map(WriteOp::put_item).collect();
        ops.push(WriteOp::put_item(&hidden));
        let state = if spec.then.responds() {
            LeaseState::Streaming
        } else {
            LeaseState::Idle
        };
        if let Err(error) = self.env.persist_as(&self.lease, state, ops).await {
            tracing::warn!(thread_id = %self.thread_id, %error, "could not commit a widget action");
            return Err(Ended::CommitFailed);
        }
        count_action(replaced.is_some());
        if let Some(replaced) = &replaced {
            let event = ThreadStreamEvent::ItemReplaced {
                item: replaced.clone(),
            };
            self.writer.send(&event).await;
        } else if changed {
            self.restore_widget(&sender.id, &sender_widget.widget).await;
        }
        for event in &extras.events {
            self.writer.send(event).await;
        }
        Ok(replaced.into_iter().chain([hidden]).collect())
    }

    /// The tool failed: the sender goes back to what it was (if progress changed it).
    async fn action_failed(&mut self, shown: Value, item_id: &ItemId, original: &Value) -> Ended {
        METRICS.widget_actions.with_label_values(&["failed"]).inc();
        if !shown.is_null() && &shown != original {
            self.restore_widget(item_id, original).await;
        }
        Ended::ActionFailed
    }
}
