//! Server tool calls of a model round: they run in parallel on the thread's MCP sessions,
//! shown as `agent.tool_display` says (hidden, progress updates, or a workflow item), their
//! widgets streamed while they run and committed, in call order, before the model's
//! follow-up text.

use futures::StreamExt;
use tokio::sync::mpsc;

use super::ask::asker;
use super::events::{WorkflowInProgress, WorkflowTask};
use super::invoke::{call_tool, forget_broken, model_arguments, open_session, Caller, ToolTarget};
use super::round::RequestedCall;
use super::run::{Ended, TurnRun};
use super::widget_stream::{show_widget_state, widget_item, StreamedWidget};
use crate::config::{McpServerConfig, ToolDisplay};
use crate::ids::{prefix, ItemId};
use crate::mcp::{McpError, OfferedTool, ToolOutput, ToolResult};
use crate::protocol::ThreadStreamEvent;
use crate::store::cluster::LeaseState;
use crate::text::clip_chars;
use crate::widgets::{progress_widget, tool_extras, ToolExtras, ToolWidget};

/// A workflow task shows at most this much of a tool's output.
const MAX_TASK_CONTENT_CHARS: usize = 500;
/// Widget states of one running tool held while the client catches up (older ones are
/// dropped: each state is whole).
pub(super) const PROGRESS_BUFFER: usize = 8;
/// Questions of a round's tools waiting to be asked (one is asked at a time).
const ASKS_BUFFER: usize = 4;

/// One call's answer: the server it went to (none for a tool nobody offered) and its result.
type CallAnswer<'a> = (Option<ToolTarget<'a>>, Result<ToolResult, McpError>);

/// A call's widget: the one streamed while it ran, the result's, and whether the call failed.
struct CallWidget {
    streamed: Option<StreamedWidget>,
    widget: Option<ToolWidget>,
    failed: bool,
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
        let task_indexes = self.show_calls_starting(calls, display, workflow).await;
        let env = self.env.clone();
        let servers = &env.settings.agent.mcp_servers;
        let unopened = self.open_sessions_for(calls, tools, servers).await;
        let (answers, streamed) = self
            .call_in_parallel(calls, tools, servers, &unopened)
            .await;
        let (outputs, widgets) = self.settle(answers, streamed).await;
        if display == ToolDisplay::Workflow {
            for ((call, output), index) in calls.iter().zip(&outputs).zip(task_indexes) {
                let (content, _) = clip_chars(output.text(), MAX_TASK_CONTENT_CHARS);
                let task = WorkflowTask::tool_call(&call.name, Some(content.to_string()));
                self.update_workflow_task(workflow, index, task).await;
            }
        }
        self.commit_widgets(widgets, workflow).await?;
        Ok(outputs)
    }

    /// Shows each call starting as `display` says; answers the workflow task indexes.
    async fn show_calls_starting(
        &mut self,
        calls: &[RequestedCall],
        display: ToolDisplay,
        workflow: &mut Option<WorkflowInProgress>,
    ) -> Vec<usize> {
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
                    let task = WorkflowTask::tool_call(&call.name, None);
                    task_indexes.push(self.add_workflow_task(workflow, task).await);
                }
            }
        }
        task_indexes
    }

    /// Opens the sessions the calls need (the tools may have been offered from the shared
    /// catalog, without one), one by one: a session belongs to this actor. Answers the
    /// servers that could not be opened.
    async fn open_sessions_for(
        &mut self,
        calls: &[RequestedCall],
        tools: &[OfferedTool],
        servers: &[McpServerConfig],
    ) -> Vec<String> {
        let mut unopened = Vec::new();
        let health = self.env.mcp_health.clone();
        for server in servers {
            let needed = calls.iter().any(|call| {
                tools
                    .iter()
                    .any(|t| t.exposed_name == call.name && t.server == server.name)
            });
            let caller = Caller {
                thread_id: &self.thread_id,
                health: &health,
            };
            if needed
                && open_session(&mut self.mcp, server, self.token.as_ref(), caller)
                    .await
                    .is_err()
            {
                unopened.push(server.name.clone());
            }
        }
        unopened
    }

    /// Runs the calls together; the widgets they stream through progress notifications are
    /// shown meanwhile. Answers each call's answer and streamed widget, in call order.
    async fn call_in_parallel<'s>(
        &mut self,
        calls: &[RequestedCall],
        tools: &'s [OfferedTool],
        servers: &'s [McpServerConfig],
        unopened: &[String],
    ) -> (Vec<CallAnswer<'s>>, Vec<Option<StreamedWidget>>) {
        let (sinks, receivers): (Vec<_>, Vec<_>) =
            calls.iter().map(|_| mpsc::channel(PROGRESS_BUFFER)).unzip();
        let health = self.env.mcp_health.clone();
        let mcp = &self.mcp;
        let caller = Caller {
            thread_id: &self.thread_id,
            health: &health,
        };
        let runs = calls.iter().zip(sinks).map(|(call, sink)| async move {
            let Some(tool) = tools.iter().find(|t| t.exposed_name == call.name) else {
                return (None, Ok(ToolResult::unknown_tool(&call.name)));
            };
            let server = servers
                .iter()
                .find(|s| s.name == tool.server)
                .expect("offered tools come from configured servers");
            let target = ToolTarget {
                server,
                tool: &tool.tool_name,
            };
            if unopened.contains(&server.name) {
                let reason = "its session could not be opened".to_string();
                let error = McpError::Unavailable {
                    server: server.name.clone(),
                    reason,
                };
                return (Some(target), Err(error));
            }
            let result = match model_arguments(&call.arguments) {
                Ok(arguments) => call_tool(mcp, target, arguments, Some(sink), caller).await,
                Err(refused) => Ok(*refused),
            };
            (Some(target), result)
        });
        let mut updates = futures::stream::select_all(receivers.into_iter().enumerate().map(
            |(index, receiver)| {
                futures::stream::unfold(receiver, move |mut receiver| async move {
                    receiver.recv().await.map(|meta| ((index, meta), receiver))
                })
                .boxed()
            },
        ));
        let mut streamed: Vec<Option<StreamedWidget>> = vec![None; calls.len()];
        // A tool may ask the user meanwhile (MCP elicitation, `elicit.rs`).
        let (ask_tx, mut asks) = mpsc::channel(ASKS_BUFFER);
        let _route = mcp.route_questions(ask_tx);
        let joined = futures::future::join_all(runs);
        tokio::pin!(joined);
        let answers = loop {
            tokio::select! {
                answers = &mut joined => break answers,
                Some(asked) = asks.recv() => {
                    if asker!(self).ask_for_tool(asked).await.is_err() {
                        // A commit failed: the tool is told cancel (its reply dropped).
                        self.question_skipped = true;
                    }
                }
                Some((index, meta)) = updates.next() => {
                    if let Some(state) = progress_widget(&meta) {
                        let (writer, floor) = (&mut self.writer, &mut self.floor);
                        show_widget_state(writer, &self.thread_id, floor, &mut streamed[index], state).await;
                    }
                }
            }
        };
        (answers, streamed)
    }

    /// Each call's output for the model, its client effects and notices shown, its widget
    /// kept for [`TurnRun::commit_widgets`]. A call whose server failed is a failed output
    /// the model sees (its session is forgotten, its streamed widget withdrawn).
    async fn settle(
        &mut self,
        answers: Vec<CallAnswer<'_>>,
        streamed: Vec<Option<StreamedWidget>>,
    ) -> (Vec<ToolOutput>, Vec<CallWidget>) {
        let mut outputs = Vec::with_capacity(answers.len());
        let mut widgets = Vec::with_capacity(answers.len());
        for ((target, result), streamed) in answers.into_iter().zip(streamed) {
            let (result, answered) = match (result, target) {
                (Ok(result), _) => (result, true),
                (Err(_), Some(target)) => {
                    forget_broken(&mut self.mcp, target.server);
                    let text = format!(
                        "The tool server {} is unavailable: {} did not answer.",
                        target.server.name, target.tool
                    );
                    (ToolResult::failed(text), false)
                }
                (Err(error), None) => (ToolResult::failed(error.to_string()), false),
            };
            let extras = match target {
                Some(t) if answered => {
                    tool_extras(&result, t.server, t.tool, &self.env.settings.widgets)
                }
                _ => ToolExtras::default(),
            };
            for event in &extras.events {
                self.writer.send(event).await;
            }
            widgets.push(CallWidget {
                streamed,
                widget: extras.widget,
                failed: result.output.failed(),
            });
            outputs.push(result.output);
        }
        (outputs, widgets)
    }

    /// The widgets, in call order, committed and announced (a streamed one whose call failed
    /// is withdrawn), closing an open workflow first.
    async fn commit_widgets(
        &mut self,
        widgets: Vec<CallWidget>,
        workflow: &mut Option<WorkflowInProgress>,
    ) -> Result<(), Ended> {
        if widgets
            .iter()
            .any(|w| w.streamed.is_some() || w.widget.is_some())
        {
            self.close_workflow(workflow).await?;
        }
        for call in widgets {
            match (call.streamed, call.widget) {
                (Some(streamed), _) if call.failed => self.withdraw_widget(streamed).await,
                (Some(streamed), widget) => self.finish_streamed_widget(streamed, widget).await?,
                (None, Some(widget)) => {
                    let created_at = self.next_timestamp();
                    let id = ItemId::generate(prefix::MESSAGE);
                    let item = widget_item(&self.thread_id, id, created_at, widget);
                    self.commit_and_announce(item, LeaseState::Streaming)
                        .await?;
                }
                (None, None) => {}
            }
        }
        Ok(())
    }
}
