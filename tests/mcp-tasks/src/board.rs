//! The `board` server (endpoint `/widgets`), meant to be configured with
//! `widgets = "result"`: its one tool answers the widget root itself, as
//! `structuredContent` and as its single text block. It reads the same task
//! store as the `tasks` server.

use std::sync::Arc;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::{CallToolResult, ContentBlock};
use rmcp::service::RequestContext;
use rmcp::{tool, tool_handler, tool_router, RoleServer, ServerHandler};
use serde_json::json;

use crate::log::EventLog;
use crate::store::TaskStore;
use crate::tools::caller;
use crate::widgets;

#[derive(Clone)]
pub struct BoardServer {
    store: Arc<TaskStore>,
    log: Arc<EventLog>,
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl BoardServer {
    pub fn new(store: Arc<TaskStore>, log: Arc<EventLog>) -> Self {
        Self {
            store,
            log,
            tool_router: Self::tool_router(),
        }
    }

    #[tool(description = "Show the caller's tasks as a board.")]
    async fn task_board(&self, ctx: RequestContext<RoleServer>) -> CallToolResult {
        let sub = match caller(&ctx) {
            Ok(sub) => sub,
            Err(error) => {
                self.log
                    .tool_call("task_board", json!({}), None, Some(&error.0));
                return CallToolResult::error(vec![ContentBlock::text(format!(
                    "Error executing tool task_board: {error}"
                ))]);
            }
        };
        let board = self
            .store
            .with_user(&sub, |tasks| widgets::task_board(&tasks.list(None)));
        self.log
            .tool_call("task_board", json!({}), Some(&sub), None);
        let mut result = CallToolResult::success(vec![ContentBlock::text(board.to_string())]);
        result.structured_content = Some(board);
        result
    }
}

#[tool_handler(
    router = self.tool_router,
    name = "board",
    instructions = "The caller's tasks as a widget board."
)]
impl ServerHandler for BoardServer {}
