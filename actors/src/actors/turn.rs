//! One turn of a thread: commit the input, run the agent (model rounds and tool calls),
//! stream everything as ChatKit events, commit what is announced, and handle the client
//! leaving (§8.8) or a dependency failing (§8.9).
//!
//! A turn runs as a future on its thread actor's context; it owns snapshots of what it needs
//! (and, for its duration, the actor's MCP sessions) and reports back a [`TurnOutcome`].

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures::StreamExt;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::config::ToolDisplay;
use crate::engine::{EngineEnv, Lease};
use crate::error::EngineError;
use crate::ids::{new_id, prefix};
use crate::mcp::{BearerToken, McpSessions, OfferedTool, ToolOutput};
use crate::metrics::METRICS;
use crate::model::{ChatMessage, FunctionSpec, ModelError, ModelEvent, ToolCallRequest, ToolSpec};
use crate::protocol::{
    AssistantMessage, AssistantMessageContent, ClientToolCall, ItemBody, Page, SdkHiddenContext,
    StreamOptions, ThreadItem, ThreadItemUpdate, ThreadMeta, ThreadStreamEvent, Timestamp,
    ToolCallStatus, Workflow, WorkflowItem, WorkflowKind, CANCELLED_STREAM_CONTEXT,
};
use crate::store::WriteOp;

/// What the HTTP layer reads: SSE frames, or one error instead of the first frame when the
/// turn failed before anything was acknowledged (the edge answers that as JSON).
pub type TurnFrame = Result<Bytes, EngineError>;
pub type TurnStream = mpsc::Receiver<TurnFrame>;

/// Everything a turn needs, prepared by the thread actor.
pub(crate) struct TurnJob {
    pub env: Arc<EngineEnv>,
    pub thread_id: String,
    /// Written before anything is sent (thread creation, user message, tool output).
    pub prelude_ops: Vec<WriteOp>,
    /// Sent once `prelude_ops` committed (`thread.created`, the user message's `done`).
    pub prelude_events: Vec<ThreadStreamEvent>,
    /// Items `prelude_ops` store, for the actor's history.
    pub prelude_items: Vec<ThreadItem>,
    /// Item ids `prelude_ops` delete.
    pub removed_ids: Vec<String>,
    pub model_input: Vec<ChatMessage>,
    pub last_created_at: Option<Timestamp>,
    pub events: mpsc::Sender<TurnFrame>,
    /// Set when the thread is untitled and this is its first answer.
    pub title_from: Option<(ThreadMeta, String)>,
    /// The caller's token, for tool servers that receive it on their transport.
    pub token: Option<BearerToken>,
    /// The actor's MCP sessions, lent for the turn.
    pub mcp: McpSessions,
    /// The thread's lease: every write of the turn is fenced with it.
    pub lease: Lease,
}

/// What a turn changed, for the actor to apply to its memory.
#[derive(Default)]
pub(crate) struct TurnOutcome {
    /// The prelude committed: for a new thread, the thread now exists.
    pub prelude_committed: bool,
    /// Committed items, in order (new ones appended, existing ids replaced).
    pub committed: Vec<ThreadItem>,
    pub removed_ids: Vec<String>,
    /// A commit failed: memory may disagree with the database, reload it.
    pub reload: bool,
    /// A generated title that was saved.
    pub title: Option<String>,
    /// The MCP sessions, handed back.
    pub mcp: Option<McpSessions>,
    /// The turn's last write already set the lease state back to idle.
    pub idle_written: bool,
}

/// How the agent part of a turn ended.
enum Ended {
    /// Answered (with text, or a pending client tool call).
    Answered,
    /// The client left; `partial` is the answer being streamed, if any.
    Cancelled { partial: Option<AnswerInProgress> },
    /// The model or a tool server failed: one in-band error.
    Failed,
    /// A commit failed: in-band error, and the actor reloads.
    CommitFailed,
}

/// How one model round ended.
enum Round {
    Text(AnswerInProgress),
    ToolCalls(AnswerInProgress, Vec<RequestedCall>),
    Ended(Ended),
}

/// A tool call the model asked for, assembled from its streamed pieces.
#[derive(Clone, Debug, Default)]
struct RequestedCall {
    id: String,
    name: String,
    arguments: String,
}

/// Runs one turn to its end. Never panics on purpose; the actor catches it if it does.
pub(crate) async fn run_turn(job: TurnJob) -> TurnOutcome {
    let _in_flight = InFlight::enter();
    let started = Instant::now();
    let mut outcome = TurnOutcome::default();
    let env = job.env.clone();
    let tx = job.events.clone();

    if !job.prelude_ops.is_empty() {
        if let Err(error) = env
            .persist_as(&job.lease, "streaming", job.prelude_ops)
            .await
        {
            tracing::warn!(thread_id = %job.thread_id, %error, "could not commit the turn's input");
            // Nothing was acknowledged: the edge answers with a JSON error, not a stream.
            let _ = tx.send(Err(error)).await;
            METRICS.turns.with_label_values(&["rejected"]).inc();
            outcome.reload = true;
            outcome.mcp = Some(job.mcp);
            return outcome;
        }
    }
    outcome.prelude_committed = true;
    outcome.committed.extend(job.prelude_items);
    outcome.removed_ids = job.removed_ids;

    let mut run = TurnRun {
        env: env.clone(),
        thread_id: job.thread_id.clone(),
        writer: EventWriter {
            tx: &tx,
            open: true,
        },
        floor: job.last_created_at,
        committed: Vec::new(),
        mcp: job.mcp,
        token: job.token,
        lease: job.lease.clone(),
        started,
        first_token_seen: false,
    };
    for event in &job.prelude_events {
        run.writer.send(event).await;
    }
    let allow_cancel = env.settings.allow_cancel;
    run.writer
        .send(&ThreadStreamEvent::StreamOptions {
            stream_options: StreamOptions { allow_cancel },
        })
        .await;

    let ended = if run.writer.open {
        run.agent(job.model_input).await
    } else {
        Ended::Cancelled { partial: None }
    };

    let label = match &ended {
        Ended::Answered => "answered",
        Ended::Cancelled { .. } => "cancelled",
        Ended::Failed => "failed",
        Ended::CommitFailed => "commit_failed",
    };
    METRICS.turns.with_label_values(&[label]).inc();
    outcome.idle_written = matches!(ended, Ended::Answered | Ended::Cancelled { .. });
    match ended {
        Ended::Answered => {
            if let Some((meta, text)) = job.title_from {
                outcome.title = save_title(&env, &run.lease, meta, &text, &mut run.writer).await;
            }
        }
        Ended::Failed => {
            run.writer
                .send(&ThreadStreamEvent::stream_error(true))
                .await
        }
        Ended::CommitFailed => {
            run.writer
                .send(&ThreadStreamEvent::stream_error(true))
                .await;
            outcome.reload = true;
        }
        Ended::Cancelled { partial } => {
            // §8.8: keep a non-empty partial answer, and always the hidden marker.
            let mut items = Vec::new();
            if let Some(answer) = partial.filter(|a| a.started && !a.text.trim().is_empty()) {
                items.push(answer.finish());
            }
            items.push(ThreadItem {
                id: new_id(prefix::SDK_HIDDEN_CONTEXT),
                thread_id: job.thread_id.clone(),
                created_at: run.next_timestamp(),
                body: ItemBody::SdkHiddenContext(SdkHiddenContext {
                    content: CANCELLED_STREAM_CONTEXT.to_string(),
                }),
            });
            let ops = items.iter().map(WriteOp::put_item).collect();
            match env.persist_as(&job.lease, "idle", ops).await {
                Ok(()) => run.committed.extend(items),
                Err(error) => {
                    tracing::warn!(thread_id = %job.thread_id, %error, "could not store the cancelled answer");
                    outcome.reload = true;
                }
            }
            tracing::debug!(thread_id = %job.thread_id, "client left; turn cancelled");
        }
    }
    outcome.committed.extend(run.committed);
    outcome.mcp = Some(run.mcp);
    METRICS
        .turn_seconds
        .observe(started.elapsed().as_secs_f64());
    outcome
}

/// Counts a running turn for as long as it lives (panics included).
struct InFlight;

impl InFlight {
    fn enter() -> Self {
        METRICS.turns_in_flight.inc();
        InFlight
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        METRICS.turns_in_flight.dec();
    }
}

/// The state of the agent part of a turn.
struct TurnRun<'a> {
    env: Arc<EngineEnv>,
    thread_id: String,
    writer: EventWriter<'a>,
    /// The newest `created_at` handed out: new items sort after it.
    floor: Option<Timestamp>,
    committed: Vec<ThreadItem>,
    mcp: McpSessions,
    token: Option<BearerToken>,
    lease: Lease,
    started: Instant,
    first_token_seen: bool,
}

impl TurnRun<'_> {
    fn next_timestamp(&mut self) -> Timestamp {
        let t = Timestamp::now_after(self.floor);
        self.floor = Some(t);
        t
    }

    /// Model rounds until an answer, a client tool call, or `agent.max_model_calls`.
    async fn agent(&mut self, mut input: Vec<ChatMessage>) -> Ended {
        let agent = self.env.settings.agent.clone();
        let tools = if agent.mcp_servers.is_empty() {
            Vec::new()
        } else {
            match self
                .mcp
                .offered_tools(&agent.mcp_servers, self.token.as_ref())
                .await
            {
                Ok(tools) => tools,
                Err(error) => {
                    let crate::mcp::McpError::Unavailable { server, .. } = &error;
                    METRICS
                        .mcp_errors
                        .with_label_values(&[server.as_str()])
                        .inc();
                    tracing::warn!(thread_id = %self.thread_id, %error, "tool servers unavailable");
                    return Ended::Failed;
                }
            }
        };
        let mut specs: Vec<ToolSpec> = tools.iter().map(|t| t.spec.clone()).collect();
        specs.extend(agent.client_tools.iter().map(|c| ToolSpec {
            kind: "function",
            function: FunctionSpec {
                name: c.name.clone(),
                description: c.description.clone(),
                parameters: c.parameters.clone(),
            },
        }));
        let mut workflow: Option<WorkflowInProgress> = None;
        for _ in 0..agent.max_model_calls.max(1) {
            match self.model_round(&input, &specs, &mut workflow).await {
                Round::Ended(ended) => return ended,
                Round::Text(answer) => {
                    if let Err(ended) = self.close_workflow(&mut workflow).await {
                        return ended;
                    }
                    return match self.complete_answer(answer, "idle").await {
                        Ok(()) => Ended::Answered,
                        Err(ended) => ended,
                    };
                }
                Round::ToolCalls(answer, calls) => {
                    let text = answer.text.clone();
                    if answer.started {
                        if let Err(ended) = self.complete_answer(answer, "streaming").await {
                            return ended;
                        }
                    }
                    if let Some(call) = calls
                        .iter()
                        .find(|c| agent.client_tools.iter().any(|t| t.name == c.name))
                    {
                        if let Err(ended) = self.close_workflow(&mut workflow).await {
                            return ended;
                        }
                        return self.end_with_client_call(call).await;
                    }
                    let outputs = match self.run_server_tools(&calls, &tools, &mut workflow).await {
                        Ok(outputs) => outputs,
                        Err(ended) => return ended,
                    };
                    input.push(ChatMessage::Assistant {
                        content: (!text.is_empty()).then_some(text),
                        tool_calls: calls
                            .iter()
                            .map(|c| {
                                ToolCallRequest::function(
                                    c.id.clone(),
                                    c.name.clone(),
                                    c.arguments.clone(),
                                )
                            })
                            .collect(),
                    });
                    for (call, output) in calls.iter().zip(outputs) {
                        input.push(ChatMessage::Tool {
                            tool_call_id: call.id.clone(),
                            content: output.text().to_string(),
                        });
                    }
                }
            }
        }
        tracing::warn!(thread_id = %self.thread_id, max_model_calls = agent.max_model_calls, "agent.max_model_calls reached");
        Ended::Failed
    }

    /// One model call: streams text as an assistant message, collects tool calls.
    async fn model_round(
        &mut self,
        input: &[ChatMessage],
        specs: &[ToolSpec],
        workflow: &mut Option<WorkflowInProgress>,
    ) -> Round {
        let tx = self.writer.tx;
        let started = tokio::select! {
            biased;
            _ = tx.closed() => return Round::Ended(Ended::Cancelled { partial: None }),
            started = self.env.model.stream(input, specs) => started,
        };
        let mut stream = match started {
            Ok(stream) => stream,
            Err(error) => {
                log_model_error(&error);
                return Round::Ended(Ended::Failed);
            }
        };
        let mut answer = AnswerInProgress::new(&self.thread_id);
        let mut calls: Vec<RequestedCall> = Vec::new();
        loop {
            let next = tokio::select! {
                biased;
                _ = tx.closed() => return Round::Ended(Ended::Cancelled { partial: Some(answer) }),
                next = stream.next() => next,
            };
            match next {
                None => break,
                // The stream ends right after (it reads the body to its end first).
                Some(Ok(ModelEvent::Finished { .. })) => {}
                Some(Ok(ModelEvent::TextDelta(delta))) => {
                    if !answer.started {
                        // §8.5: a workflow closes when a message starts.
                        if let Err(ended) = self.close_workflow(workflow).await {
                            return Round::Ended(ended);
                        }
                        answer.created_at = self.next_timestamp();
                        begin_answer(&mut self.writer, &mut answer).await;
                    }
                    if !self.first_token_seen {
                        self.first_token_seen = true;
                        METRICS
                            .time_to_first_token_seconds
                            .observe(self.started.elapsed().as_secs_f64());
                    }
                    answer.text.push_str(&delta);
                    let event = ThreadStreamEvent::ItemUpdated {
                        item_id: answer.id.clone(),
                        update: ThreadItemUpdate::TextDelta {
                            content_index: 0,
                            delta,
                        },
                    };
                    self.writer.send(&event).await;
                }
                Some(Ok(ModelEvent::ToolCallDelta {
                    index,
                    id,
                    name,
                    arguments,
                })) => {
                    let index = index as usize;
                    if index >= 128 {
                        continue; // a bound on what a misbehaving model can make us hold
                    }
                    if calls.len() <= index {
                        calls.resize(index + 1, RequestedCall::default());
                    }
                    let call = &mut calls[index];
                    if let Some(id) = id {
                        call.id = id;
                    }
                    if let Some(name) = name {
                        call.name = name;
                    }
                    call.arguments.push_str(&arguments);
                }
                Some(Err(error)) => {
                    log_model_error(&error);
                    return Round::Ended(Ended::Failed);
                }
            }
            if !self.writer.open {
                return Round::Ended(Ended::Cancelled {
                    partial: Some(answer),
                });
            }
        }
        calls.retain(|c| !c.name.is_empty());
        for call in &mut calls {
            if call.id.is_empty() {
                call.id = new_id(prefix::TOOL_CALL);
            }
        }
        if calls.is_empty() {
            if !answer.started {
                answer.created_at = self.next_timestamp();
                begin_answer(&mut self.writer, &mut answer).await;
            }
            Round::Text(answer)
        } else {
            Round::ToolCalls(answer, calls)
        }
    }

    /// `content_part.done`, commit, `thread.item.done`.
    async fn complete_answer(
        &mut self,
        answer: AnswerInProgress,
        state: &'static str,
    ) -> Result<(), Ended> {
        let item = answer.finish();
        let done = ThreadStreamEvent::ItemUpdated {
            item_id: item.id.clone(),
            update: ThreadItemUpdate::ContentPartDone {
                content_index: 0,
                content: AssistantMessageContent::text(answer.text.clone()),
            },
        };
        self.writer.send(&done).await;
        self.commit_and_announce(item, state).await
    }

    async fn commit_and_announce(
        &mut self,
        item: ThreadItem,
        state: &'static str,
    ) -> Result<(), Ended> {
        match self
            .env
            .persist_as(&self.lease, state, vec![WriteOp::put_item(&item)])
            .await
        {
            Ok(()) => {
                self.writer
                    .send(&ThreadStreamEvent::ItemDone { item: item.clone() })
                    .await;
                self.committed.push(item);
                Ok(())
            }
            Err(error) => {
                tracing::warn!(thread_id = %self.thread_id, %error, "could not commit an item");
                Err(Ended::CommitFailed)
            }
        }
    }

    /// §8.6: the turn ends with a pending `client_tool_call` the browser will run.
    async fn end_with_client_call(&mut self, call: &RequestedCall) -> Ended {
        let arguments = match serde_json::from_str::<Value>(&call.arguments) {
            Ok(Value::Object(map)) => Value::Object(map),
            _ => json!({}),
        };
        let item = ThreadItem {
            id: new_id(prefix::TOOL_CALL),
            thread_id: self.thread_id.clone(),
            created_at: self.next_timestamp(),
            body: ItemBody::ClientToolCall(ClientToolCall {
                status: ToolCallStatus::Pending,
                call_id: call.id.clone(),
                name: call.name.clone(),
                arguments,
                output: None,
            }),
        };
        match self.commit_and_announce(item, "idle").await {
            Ok(()) => Ended::Answered,
            Err(ended) => ended,
        }
    }

    /// Runs the round's server tool calls in parallel, showing them as configured.
    async fn run_server_tools(
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
                let content: String = output.text().chars().take(500).collect();
                let task = json!({ "status_indicator": "complete", "type": "custom", "title": call.name, "content": content });
                self.update_workflow_task(workflow, index, task).await;
            }
        }
        Ok(outputs)
    }

    /// Adds a task, opening the workflow (with that task) if none is open (§8.5).
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
    async fn close_workflow(
        &mut self,
        workflow: &mut Option<WorkflowInProgress>,
    ) -> Result<(), Ended> {
        let Some(open) = workflow.take() else {
            return Ok(());
        };
        let summary = json!({ "duration": open.started.elapsed().as_secs() });
        let item = open.item(&self.thread_id, Some(summary));
        self.commit_and_announce(item, "streaming").await
    }
}

/// A workflow item being built from tool calls.
struct WorkflowInProgress {
    id: String,
    created_at: Timestamp,
    started: Instant,
    tasks: Vec<Value>,
}

impl WorkflowInProgress {
    fn item(&self, thread_id: &str, summary: Option<Value>) -> ThreadItem {
        ThreadItem {
            id: self.id.clone(),
            thread_id: thread_id.to_string(),
            created_at: self.created_at,
            body: ItemBody::Workflow(WorkflowItem {
                workflow: Workflow {
                    kind: WorkflowKind::Custom,
                    tasks: self.tasks.clone(),
                    summary,
                    expanded: false,
                },
            }),
        }
    }
}

/// Generates, saves and announces a title (§8.7). Failures only cost the title.
async fn save_title(
    env: &EngineEnv,
    lease: &Lease,
    mut meta: ThreadMeta,
    text: &str,
    writer: &mut EventWriter<'_>,
) -> Option<String> {
    let settings = &env.settings.titles;
    let messages = [
        ChatMessage::System {
            content: settings.prompt.clone(),
        },
        ChatMessage::User {
            content: text.to_string(),
        },
    ];
    let raw = match env.model.complete(&messages).await {
        Ok(raw) => raw,
        Err(error) => {
            tracing::warn!(thread_id = %meta.id, %error, "title generation failed");
            return None;
        }
    };
    let title = clean_title(&raw, settings.max_chars)?;
    let op = WriteOp::SetTitleIfUntitled {
        thread_id: meta.id.clone(),
        title: title.clone(),
    };
    if let Err(error) = env.persist_as(lease, "idle", vec![op]).await {
        tracing::warn!(thread_id = %meta.id, %error, "could not save the title");
        return None;
    }
    meta.title = Some(title.clone());
    writer
        .send(&ThreadStreamEvent::ThreadUpdated {
            thread: meta.to_wire(Page::empty()),
        })
        .await;
    Some(title)
}

/// One line, no surrounding quotes, at most `max_chars` characters; `None` if empty.
fn clean_title(raw: &str, max_chars: usize) -> Option<String> {
    let line = raw.lines().find(|l| !l.trim().is_empty())?.trim();
    let line = line
        .trim_matches(|c: char| c == '"' || c == '\'' || c == '“' || c == '”')
        .trim();
    let mut title: String = line.chars().take(max_chars).collect();
    if line.chars().count() > max_chars {
        title = title.trim_end().to_string();
        title.push('…');
    }
    (!title.is_empty()).then_some(title)
}

/// Sends events while the client listens; remembers when it left.
struct EventWriter<'a> {
    tx: &'a mpsc::Sender<TurnFrame>,
    open: bool,
}

impl EventWriter<'_> {
    async fn send(&mut self, event: &ThreadStreamEvent) {
        if self.open && self.tx.send(Ok(event.to_sse())).await.is_err() {
            self.open = false;
        }
    }
}

/// The assistant message being streamed.
struct AnswerInProgress {
    id: String,
    thread_id: String,
    created_at: Timestamp,
    text: String,
    started: bool,
}

impl AnswerInProgress {
    fn new(thread_id: &str) -> Self {
        AnswerInProgress {
            id: new_id(prefix::MESSAGE),
            thread_id: thread_id.to_string(),
            created_at: Timestamp::now(),
            text: String::new(),
            started: false,
        }
    }

    fn item(&self, content: Vec<AssistantMessageContent>) -> ThreadItem {
        ThreadItem {
            id: self.id.clone(),
            thread_id: self.thread_id.clone(),
            created_at: self.created_at,
            body: ItemBody::AssistantMessage(AssistantMessage { content }),
        }
    }

    fn finish(&self) -> ThreadItem {
        self.item(vec![AssistantMessageContent::text(self.text.clone())])
    }
}

/// `thread.item.added` (empty content) and `content_part.added` (§8.3).
async fn begin_answer(writer: &mut EventWriter<'_>, answer: &mut AnswerInProgress) {
    answer.started = true;
    writer
        .send(&ThreadStreamEvent::ItemAdded {
            item: answer.item(Vec::new()),
        })
        .await;
    let part_added = ThreadStreamEvent::ItemUpdated {
        item_id: answer.id.clone(),
        update: ThreadItemUpdate::ContentPartAdded {
            content_index: 0,
            content: AssistantMessageContent::text(""),
        },
    };
    writer.send(&part_added).await;
}

fn log_model_error(error: &ModelError) {
    let kind = match error {
        ModelError::Http { .. } => "http",
        ModelError::Unreachable(_) => "unreachable",
        ModelError::Interrupted(_) => "interrupted",
        ModelError::Timeout(_) => "timeout",
        ModelError::Protocol(_) => "protocol",
    };
    METRICS.model_errors.with_label_values(&[kind]).inc();
    tracing::warn!(%error, "model call failed");
}

#[cfg(test)]
mod tests {
    use super::clean_title;

    #[test]
    fn titles_are_one_clean_bounded_line() {
        assert_eq!(
            clean_title("\n \"Paris weather\"\nmore", 60).as_deref(),
            Some("Paris weather")
        );
        assert_eq!(clean_title("abcdef", 3).as_deref(), Some("abc…"));
        assert_eq!(clean_title("  \n ", 10), None);
    }
}
