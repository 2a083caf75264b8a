//! The MCP tools, declared with rmcp's `#[tool_router]` / `#[tool]` macros.
//!
//! Each tool finds its caller in the HTTP request that carried the call (the
//! [`Caller`] the auth gate put in the request extensions), runs against that
//! caller's task list only, logs the call, and answers with one text content
//! item: the compact JSON of the result, or the error message as a tool error.
//! No tool takes a user id or a token: credentials travel on the transport.
//! The widget tools (`widget_tools`) join this router; their `_meta` is built
//! by `widgets`.

use std::sync::Arc;
use std::time::Duration;

use rmcp::handler::server::{router::tool::ToolRouter, wrapper::Parameters};
use rmcp::model::{CallToolResult, ContentBlock};
use rmcp::schemars::JsonSchema;
use rmcp::service::RequestContext;
use rmcp::{tool, tool_handler, tool_router, RoleServer, ServerHandler};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::auth::Caller;
use crate::log::EventLog;
use crate::store::{TaskList, TaskStatus, TaskStore, ToolError};

/// Longest sleep `slow_echo` accepts, in seconds.
const MAX_SLOW_ECHO_SECONDS: f64 = 60.0;

/// The MCP server handler. rmcp builds one per session from a clone of this
/// value; the store and the log are shared by all of them.
#[derive(Clone)]
pub struct TaskServer {
    store: Arc<TaskStore>,
    pub(crate) log: Arc<EventLog>,
    delay: std::time::Duration,
    tool_router: ToolRouter<Self>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct AddTaskArgs {
    /// Short title of the task (1 to 500 characters).
    title: String,
    /// Optional longer description (up to 5000 characters).
    description: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct ListTasksArgs {
    /// Only tasks with this status; all tasks when omitted.
    status: Option<TaskStatus>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct UpdateTaskArgs {
    /// Id of the task, as returned by add_task or list_tasks.
    task_id: String,
    /// New title, if it changes.
    title: Option<String>,
    /// New description, if it changes.
    description: Option<String>,
    /// New status, if it changes.
    status: Option<TaskStatus>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct TaskIdArgs {
    /// Id of the task, as returned by add_task or list_tasks.
    pub(crate) task_id: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct SlowEchoArgs {
    /// Text to send back.
    text: String,
    /// How long to wait before answering, in seconds (capped at 60).
    seconds: f64,
}

#[derive(Serialize)]
struct TaskPage<T> {
    tasks: Vec<T>,
    count: usize,
}

#[tool_router]
impl TaskServer {
    pub fn new(store: Arc<TaskStore>, log: Arc<EventLog>, delay: std::time::Duration) -> Self {
        Self {
            store,
            log,
            delay,
            tool_router: Self::tool_router() + Self::widget_tool_router() + Self::ask_tool_router(),
        }
    }

    /// Also answers the created task as `structuredContent`.
    #[tool(description = "Add a task to the caller's task list.")]
    async fn add_task(
        &self,
        Parameters(args): Parameters<AddTaskArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        tokio::time::sleep(self.delay).await;
        let logged = json!({"title": args.title, "description": args.description});
        self.run_then(
            "add_task",
            logged,
            &ctx,
            |tasks| tasks.add(&args.title, args.description.as_deref()),
            |task, mut result| {
                result.structured_content =
                    Some(serde_json::to_value(task).expect("tasks serialise"));
                result
            },
        )
    }

    #[tool(description = "List the caller's tasks, optionally only those with a status.")]
    async fn list_tasks(
        &self,
        Parameters(args): Parameters<ListTasksArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        self.run(
            "list_tasks",
            json!({"status": args.status}),
            &ctx,
            |tasks| {
                let tasks = tasks.list(args.status);
                Ok(TaskPage {
                    count: tasks.len(),
                    tasks,
                })
            },
        )
    }

    #[tool(description = "Change a task's title, description or status.")]
    async fn update_task(
        &self,
        Parameters(args): Parameters<UpdateTaskArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let logged = json!({
            "task_id": args.task_id,
            "title": args.title,
            "description": args.description,
            "status": args.status,
        });
        self.run("update_task", logged, &ctx, |tasks| {
            tasks.update(
                &args.task_id,
                args.title.as_deref(),
                args.description.as_deref(),
                args.status,
            )
        })
    }

    #[tool(description = "Mark a task as done.")]
    async fn complete_task(
        &self,
        Parameters(args): Parameters<TaskIdArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        self.run(
            "complete_task",
            json!({"task_id": args.task_id}),
            &ctx,
            |tasks| tasks.complete(&args.task_id),
        )
    }

    #[tool(description = "Delete a task.")]
    async fn delete_task(
        &self,
        Parameters(args): Parameters<TaskIdArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        self.run(
            "delete_task",
            json!({"task_id": args.task_id}),
            &ctx,
            |tasks| {
                tasks.delete(&args.task_id)?;
                Ok(json!({"deleted": true, "id": args.task_id}))
            },
        )
    }

    #[tool(
        description = "Wait `seconds` (at most 60) and then return `text` unchanged. For timeout tests."
    )]
    async fn slow_echo(
        &self,
        Parameters(args): Parameters<SlowEchoArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let logged = json!({"text": args.text, "seconds": args.seconds});
        let sub = match caller(&ctx) {
            Ok(sub) => sub,
            Err(error) => return self.fail("slow_echo", logged, None, &error),
        };
        let seconds = if args.seconds.is_finite() {
            args.seconds.clamp(0.0, MAX_SLOW_ECHO_SECONDS)
        } else {
            0.0
        };
        tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
        self.log.tool_call("slow_echo", logged, Some(&sub), None);
        CallToolResult::success(vec![ContentBlock::text(args.text)])
    }
}

impl TaskServer {
    /// Identifies the caller, runs `op` on their task list, logs the call and
    /// turns the outcome into the tool result (the reference server's `run`).
    fn run<T: Serialize>(
        &self,
        tool: &str,
        logged: Value,
        ctx: &RequestContext<RoleServer>,
        op: impl FnOnce(&mut TaskList) -> Result<T, ToolError>,
    ) -> CallToolResult {
        self.run_then(tool, logged, ctx, op, |_, result| result)
    }

    /// [`Self::run`], then `finish` adds the interface-only parts (`_meta`,
    /// structured content) to a successful result, from the tool's value.
    pub(crate) fn run_then<T: Serialize>(
        &self,
        tool: &str,
        logged: Value,
        ctx: &RequestContext<RoleServer>,
        op: impl FnOnce(&mut TaskList) -> Result<T, ToolError>,
        finish: impl FnOnce(&T, CallToolResult) -> CallToolResult,
    ) -> CallToolResult {
        let sub = match caller(ctx) {
            Ok(sub) => sub,
            Err(error) => return self.fail(tool, logged, None, &error),
        };
        match self.store.with_user(&sub, op) {
            Ok(value) => {
                self.log.tool_call(tool, logged, Some(&sub), None);
                let text = serde_json::to_string(&value).expect("tool results serialise");
                finish(
                    &value,
                    CallToolResult::success(vec![ContentBlock::text(text)]),
                )
            }
            Err(error) => self.fail(tool, logged, Some(&sub), &error),
        }
    }

    /// Logs a failed call and reports it as an MCP tool error, worded as
    /// FastMCP words it for the reference server.
    pub(crate) fn fail(
        &self,
        tool: &str,
        logged: Value,
        sub: Option<&str>,
        error: &ToolError,
    ) -> CallToolResult {
        self.log.tool_call(tool, logged, sub, Some(&error.0));
        CallToolResult::error(vec![ContentBlock::text(format!(
            "Error executing tool {tool}: {error}"
        ))])
    }
}

/// The `sub` the auth gate verified for the HTTP request carrying this call.
/// rmcp puts that request's `http::request::Parts` in the context extensions.
pub(crate) fn caller(ctx: &RequestContext<RoleServer>) -> Result<String, ToolError> {
    ctx.extensions
        .get::<http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<Caller>())
        .map(|caller| caller.sub.clone())
        .ok_or_else(|| ToolError("unauthenticated".into()))
}

#[tool_handler(
    router = self.tool_router,
    name = "tasks",
    instructions = "Manage the caller's personal task list."
)]
impl ServerHandler for TaskServer {}
