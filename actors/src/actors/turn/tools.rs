//! Server tool calls: the round's calls run in parallel on the thread's MCP sessions, shown
//! as `agent.tool_display` says (hidden, progress updates, or a workflow item).

use std::time::Instant;

use futures::StreamExt;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::agent::{Ended, RequestedCall, TurnRun};
use super::events::{thought_task, thoughts, WorkflowInProgress, THOUGHT_UPDATE_INTERVAL};
use crate::config::ToolDisplay;
use crate::ids::{new_id, prefix};
use crate::mcp::{OfferedTool, ToolOutput, ToolResult};
use crate::metrics::METRICS;
use crate::protocol::{
    ItemBody, ThreadItem, ThreadItemUpdate, ThreadStreamEvent, Timestamp, WidgetItem, WorkflowKind,
};
use crate::store::cluster::LeaseState;
use crate::text::clip_chars;
use crate::widgets::{diff_widget, progress_widget, tool_extras, ToolExtras, ToolWidget};

/// A workflow task shows at most this much of a tool's output.
const MAX_TASK_CONTENT_CHARS: usize = 500;
/// Widget states of one running tool held while the client catches up (older ones are
/// dropped: each state is whole).
pub(super) const PROGRESS_BUFFER: usize = 8;

/// A widget being streamed while its tool runs (protocol §8.13): announced with
/// `thread.item.added`, then updated.
#[derive(Clone, Debug)]
pub(super) struct StreamedWidget {
    pub id: String,
    pub created_at: Timestamp,
    /// The state the client has.
    pub state: Value,
}

/// A widget item of the thread.
pub(super) fn widget_item(
    thread_id: &str,
    id: String,
    created_at: Timestamp,
    widget: ToolWidget,
) -> ThreadItem {
    ThreadItem {
        id,
        thread_id: thread_id.to_string(),
        created_at,
        body: ItemBody::Widget(WidgetItem {
            widget: widget.widget,
            copy_text: widget.copy_text,
        }),
    }
}

/// Shows a tool's new widget state: the first announces the item, later ones are diffed
/// against what the client has.
async fn show_widget_state(
    writer: &mut super::events::EventWriter<'_>,
    thread_id: &str,
    floor: &mut Option<Timestamp>,
    streamed: &mut Option<StreamedWidget>,
    state: Value,
) {
    match streamed {
        None => {
            let created_at = Timestamp::now_after(*floor);
            *floor = Some(created_at);
            let id = new_id(prefix::MESSAGE);
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
    /// Runs the round's server tool calls in parallel, showing them as configured.
    pub(super) async fn run_server_tools(
        &mut self,
        calls: &[RequestedCall],
        tools: &[OfferedTool],
        workflow: &mut Option<WorkflowInProgress>,
    ) -> Result<Vec<ToolOutput>, Ended> {
        let display = self.env.settings.agent.tool_display;
        let mut task_indexes = Vec::new();
        for call in calls {
            match display {
                ToolDisplay::Hidden => {}
                ToolDisplay::Progress => {
                    let event = ThreadStreamEvent::ProgressUpdate {
                        icon: None,
                        text: format!("Running {}", call.name),
                    };
                    self.writer.send(&event).await;
                }
                ToolDisplay::Workflow => {
                    let task = json!({ "status_indicator": "loading", "type": "custom", "title": call.name });
                    task_indexes.push(self.add_workflow_task(workflow, task).await);
                }
            }
        }
        let env = self.env.clone();
        let servers = &env.settings.agent.mcp_servers;
        // The tools may have been offered from the shared catalog: open the sessions the
        // calls need first (one by one: a session belongs to this actor).
        for server in servers {
            let needed = calls.iter().any(|call| {
                tools
                    .iter()
                    .any(|t| t.exposed_name == call.name && t.server == server.name)
            });
            if !needed {
                continue;
            }
            if let Err(error) = self.mcp.ensure_open(server, self.token.as_ref()).await {
                tracing::warn!(thread_id = %self.thread_id, %error, "tool server failed");
                METRICS
                    .mcp_errors
                    .with_label_values(&[server.name.as_str()])
                    .inc();
                return Err(Ended::Failed);
            }
        }
        let mcp = &self.mcp;
        let mut sinks = Vec::with_capacity(calls.len());
        let mut receivers = Vec::with_capacity(calls.len());
        for _ in calls {
            let (sink, receiver) = mpsc::channel(PROGRESS_BUFFER);
            sinks.push(sink);
            receivers.push(receiver);
        }
        let runs = calls.iter().zip(sinks).map(|(call, sink)| async move {
            let Some(tool) = tools.iter().find(|t| t.exposed_name == call.name) else {
                return (None, Ok(ToolResult::unknown_tool(&call.name)));
            };
            let server = servers.iter().find(|s| s.name == tool.server).expect("offered tools come from configured servers");
            let started = Instant::now();
            let result = mcp.call(server, &tool.tool_name, &call.arguments, Some(sink)).await;
            METRICS.mcp_call_seconds.with_label_values(&[server.name.as_str()]).observe(started.elapsed().as_secs_f64());
            if result.is_err() {
                METRICS.mcp_errors.with_label_values(&[server.name.as_str()]).inc();
            }
            tracing::debug!(server = %server.name, tool = %tool.tool_name, elapsed = ?started.elapsed(), ok = result.is_ok(), "tool call");
            (Some((server, tool.tool_name.as_str())), result)
        });
        // Widgets streamed through progress notifications are shown while the calls run.
        let mut updates = futures::stream::select_all(receivers.into_iter().enumerate().map(
            |(index, receiver)| {
                futures::stream::unfold(receiver, move |mut receiver| async move {
                    receiver.recv().await.map(|meta| ((index, meta), receiver))
                })
                .boxed()
            },
        ));
        let mut streamed: Vec<Option<StreamedWidget>> = vec![None; calls.len()];
        let results = {
            let joined = futures::future::join_all(runs);
            tokio::pin!(joined);
            loop {
                tokio::select! {
                    results = &mut joined => break results,
                    Some((index, meta)) = updates.next() => {
                        if let Some(state) = progress_widget(&meta) {
                            let floor = &mut self.floor;
                            show_widget_state(&mut self.writer, &self.thread_id, floor, &mut streamed[index], state).await;
                        }
                    }
                }
            }
        };
        let mut outputs = Vec::with_capacity(results.len());
        let mut widgets = Vec::new();
        let mut failed = false;
        for ((origin, result), streamed) in results.into_iter().zip(streamed) {
            match result {
                Ok(result) => {
                    let extras = match origin {
                        Some((server, tool)) => {
                            tool_extras(&result, server, tool, &env.settings.widgets)
                        }
                        None => ToolExtras::default(),
                    };
                    for event in &extras.events {
                        self.writer.send(event).await;
                    }
                    widgets.push((streamed, extras.widget, result.output.failed()));
                    outputs.push(result.output);
                }
                Err(error) => {
                    tracing::warn!(thread_id = %self.thread_id, %error, "tool server failed");
                    if let Some((server, _)) = origin {
                        self.mcp.forget(&server.name);
                    }
                    widgets.push((streamed, None, true));
                    failed = true;
                }
            }
        }
        if failed {
            for (streamed, _, _) in widgets {
                if let Some(streamed) = streamed {
                    self.withdraw_widget(streamed).await;
                }
            }
            return Err(Ended::Failed);
        }
        if display == ToolDisplay::Workflow {
            for ((call, output), index) in calls.iter().zip(&outputs).zip(task_indexes) {
                let (content, _) = clip_chars(output.text(), MAX_TASK_CONTENT_CHARS);
                let task = json!({ "status_indicator": "complete", "type": "custom", "title": call.name, "content": content });
                self.update_workflow_task(workflow, index, task).await;
            }
        }
        // The widgets, in call order, before the model's follow-up text.
        if widgets.iter().any(|(s, w, _)| s.is_some() || w.is_some()) {
            self.close_workflow(workflow).await?;
        }
        for (streamed, widget, call_failed) in widgets {
            match (streamed, widget) {
                (Some(streamed), _) if call_failed => self.withdraw_widget(streamed).await,
                (Some(streamed), widget) => self.finish_streamed_widget(streamed, widget).await?,
                (None, Some(widget)) => {
                    let created_at = self.next_timestamp();
                    let item =
                        widget_item(&self.thread_id, new_id(prefix::MESSAGE), created_at, widget);
                    self.commit_and_announce(item, LeaseState::Streaming)
                        .await?;
                }
                (None, None) => {}
            }
        }
        Ok(outputs)
    }

    /// Commits a streamed widget in its final state (the result's widget, or the last
    /// progress state) and announces it, after the updates that lead there.
    async fn finish_streamed_widget(
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
    async fn withdraw_widget(&mut self, streamed: StreamedWidget) {
        let event = ThreadStreamEvent::ItemRemoved {
            item_id: streamed.id,
        };
        self.writer.send(&event).await;
    }

    /// Adds a task, opening the workflow (with that task) if none is open (protocol §8.5).
    async fn add_workflow_task(
        &mut self,
        workflow: &mut Option<WorkflowInProgress>,
        task: Value,
    ) -> usize {
        match workflow {
            Some(open) => {
                open.tasks.push(task.clone());
                let index = open.tasks.len() - 1;
                let event = ThreadStreamEvent::ItemUpdated {
                    item_id: open.id.clone(),
                    update: ThreadItemUpdate::WorkflowTaskAdded {
                        task_index: index,
                        task,
                    },
                };
                self.writer.send(&event).await;
                index
            }
            None => {
                let opened = WorkflowInProgress::new(
                    WorkflowKind::Custom,
                    self.next_timestamp(),
                    vec![task],
                );
                let event = ThreadStreamEvent::ItemAdded {
                    item: opened.item(&self.thread_id, None),
                };
                self.writer.send(&event).await;
                *workflow = Some(opened);
                0
            }
        }
    }

    async fn update_workflow_task(
        &mut self,
        workflow: &mut Option<WorkflowInProgress>,
        index: usize,
        task: Value,
    ) {
        let Some(open) = workflow else { return };
        open.tasks[index] = task.clone();
        let event = ThreadStreamEvent::ItemUpdated {
            item_id: open.id.clone(),
            update: ThreadItemUpdate::WorkflowTaskUpdated {
                task_index: index,
                task,
            },
        };
        self.writer.send(&event).await;
    }

    /// Shows the model's reasoning as a `reasoning` workflow (protocol §8.5): opened (closing a
    /// tool workflow first) with `thread.item.added` and no tasks, then one `thought` task per
    /// paragraph, the one being written re-sent at most every [`THOUGHT_UPDATE_INTERVAL`].
    pub(super) async fn show_reasoning(
        &mut self,
        workflow: &mut Option<WorkflowInProgress>,
        delta: &str,
    ) -> Result<(), Ended> {
        if workflow
            .as_ref()
            .is_some_and(|w| w.kind != WorkflowKind::Reasoning)
        {
            self.close_workflow(workflow).await?;
        }
        let open = match workflow {
            Some(open) => open,
            None => {
                let opened =
                    WorkflowInProgress::new(WorkflowKind::Reasoning, self.next_timestamp(), vec![]);
                let event = ThreadStreamEvent::ItemAdded {
                    item: opened.item(&self.thread_id, None),
                };
                self.writer.send(&event).await;
                workflow.insert(opened)
            }
        };
        open.reasoning.push_str(delta);
        self.show_thoughts(open, false).await;
        Ok(())
    }

    /// Brings the client's thoughts up to the reasoning text: new paragraphs are added, a
    /// finished one is sent whole, the one being written when it is due (or `flush`).
    async fn show_thoughts(&mut self, open: &mut WorkflowInProgress, flush: bool) {
        let due = flush
            || open
                .shown_at
                .is_none_or(|at| at.elapsed() >= THOUGHT_UPDATE_INTERVAL);
        let current: Vec<String> = thoughts(&open.reasoning)
            .into_iter()
            .map(str::to_string)
            .collect();
        let last = current.len().saturating_sub(1);
        for (index, thought) in current.iter().enumerate() {
            let task = thought_task(thought);
            let update = if index >= open.tasks.len() {
                open.tasks.push(task.clone());
                ThreadItemUpdate::WorkflowTaskAdded {
                    task_index: index,
                    task,
                }
            } else if open.tasks[index] != task && (due || index < last) {
                open.tasks[index] = task.clone();
                ThreadItemUpdate::WorkflowTaskUpdated {
                    task_index: index,
                    task,
                }
            } else {
                continue;
            };
            let event = ThreadStreamEvent::ItemUpdated {
                item_id: open.id.clone(),
                update,
            };
            self.writer.send(&event).await;
        }
        if due {
            open.shown_at = Some(Instant::now());
        }
    }

    /// Commits and announces an open workflow with its duration summary.
    pub(super) async fn close_workflow(
        &mut self,
        workflow: &mut Option<WorkflowInProgress>,
    ) -> Result<(), Ended> {
        let Some(mut open) = workflow.take() else {
            return Ok(());
        };
        if open.kind == WorkflowKind::Reasoning {
            self.show_thoughts(&mut open, true).await;
        }
        let summary = json!({ "duration": open.started.elapsed().as_secs() });
        let item = open.item(&self.thread_id, Some(summary));
        self.commit_and_announce(item, LeaseState::Streaming).await
    }
}
