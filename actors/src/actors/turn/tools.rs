//! Server tool calls: the round's calls run in parallel on the thread's MCP sessions, shown
//! as `agent.tool_display` says (hidden, progress updates, or a workflow item).

use std::time::Instant;

use serde_json::{json, Value};

use super::agent::{Ended, RequestedCall, TurnRun};
use super::events::{thought_task, thoughts, WorkflowInProgress, THOUGHT_UPDATE_INTERVAL};
use crate::config::ToolDisplay;
use crate::mcp::{OfferedTool, ToolOutput};
use crate::metrics::METRICS;
use crate::protocol::{ThreadItemUpdate, ThreadStreamEvent, WorkflowKind};
use crate::store::cluster::LeaseState;
use crate::text::clip_chars;

/// A workflow task shows at most this much of a tool's output.
const MAX_TASK_CONTENT_CHARS: usize = 500;

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
        let servers = &self.env.settings.agent.mcp_servers;
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
        let runs = calls.iter().map(|call| async move {
            let Some(tool) = tools.iter().find(|t| t.exposed_name == call.name) else {
                return (None, Ok(ToolOutput::Failed(format!("there is no tool named {}", call.name))));
            };
            let server = servers.iter().find(|s| s.name == tool.server).expect("offered tools come from configured servers");
            let started = Instant::now();
            let result = mcp.call(server, &tool.tool_name, &call.arguments).await;
            METRICS.mcp_call_seconds.with_label_values(&[server.name.as_str()]).observe(started.elapsed().as_secs_f64());
            if result.is_err() {
                METRICS.mcp_errors.with_label_values(&[server.name.as_str()]).inc();
            }
            tracing::debug!(server = %server.name, tool = %tool.tool_name, elapsed = ?started.elapsed(), ok = result.is_ok(), "tool call");
            (Some(server.name.clone()), result)
        });
        let results = futures::future::join_all(runs).await;
        let mut outputs = Vec::with_capacity(results.len());
        let mut failed = false;
        for (server, result) in results {
            match result {
                Ok(output) => outputs.push(output),
                Err(error) => {
                    tracing::warn!(thread_id = %self.thread_id, %error, "tool server failed");
                    if let Some(server) = server {
                        self.mcp.forget(&server);
                    }
                    failed = true;
                }
            }
        }
        if failed {
            return Err(Ended::Failed);
        }
        if display == ToolDisplay::Workflow {
            for ((call, output), index) in calls.iter().zip(&outputs).zip(task_indexes) {
                let (content, _) = clip_chars(output.text(), MAX_TASK_CONTENT_CHARS);
                let task = json!({ "status_indicator": "complete", "type": "custom", "title": call.name, "content": content });
                self.update_workflow_task(workflow, index, task).await;
            }
        }
        Ok(outputs)
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
