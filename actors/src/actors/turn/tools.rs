//! Server tool calls: the round's calls run in parallel on the thread's MCP sessions, shown
//! as `agent.tool_display` says (hidden, progress updates, or a workflow item).

use std::time::Instant;

use serde_json::{json, Value};

use super::agent::{Ended, RequestedCall, TurnRun};
use super::events::WorkflowInProgress;
use crate::config::ToolDisplay;
use crate::ids::{new_id, prefix};
use crate::mcp::{OfferedTool, ToolOutput};
use crate::metrics::METRICS;
use crate::protocol::{ThreadItemUpdate, ThreadStreamEvent};
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
                let opened = WorkflowInProgress {
                    id: new_id(prefix::WORKFLOW),
                    created_at: self.next_timestamp(),
                    started: Instant::now(),
                    tasks: vec![task],
                };
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

    /// Commits and announces an open workflow with its duration summary.
    pub(super) async fn close_workflow(
        &mut self,
        workflow: &mut Option<WorkflowInProgress>,
    ) -> Result<(), Ended> {
        let Some(open) = workflow.take() else {
            return Ok(());
        };
        let summary = json!({ "duration": open.started.elapsed().as_secs() });
        let item = open.item(&self.thread_id, Some(summary));
        self.commit_and_announce(item, LeaseState::Streaming).await
    }
}
