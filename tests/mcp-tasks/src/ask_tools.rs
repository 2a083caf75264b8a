//! The eliciting tool of the `tasks` server (endpoint `/mcp`): a third `#[tool_router]` on
//! [`TaskServer`]. `order_pizza` asks the user, through MCP elicitation, for a size (an enum
//! with labels), a count (an integer), whether it is urgent (a boolean) and a note (a
//! string), and answers with what came back: `accept` and the typed content, or the action.

use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, ElicitRequestParams, ElicitationAction};
use rmcp::schemars::JsonSchema;
use rmcp::service::RequestContext;
use rmcp::{tool, tool_router, RoleServer};
use serde::Deserialize;
use serde_json::json;

use crate::tools::{caller, TaskServer};

/// The form `order_pizza` asks for (MCP's flat elicitation schema).
fn order_form() -> ElicitRequestParams {
    serde_json::from_value(json!({
        "mode": "form",
        "message": "How should the pizza be?",
        "requestedSchema": {
            "type": "object",
            "properties": {
                "size": {"type": "string", "title": "Size", "enum": ["s", "l"], "enumNames": ["Small", "Large"]},
                "count": {"type": "integer", "title": "How many?", "description": "1 to 9", "minimum": 1, "maximum": 9},
                "urgent": {"type": "boolean", "title": "Urgent?"},
                "note": {"type": "string", "description": "For the cook"}
            },
            "required": ["size", "count"]
        }
    }))
    .expect("a valid elicitation form")
}

#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct OrderArgs {
    /// Ask again this many times after a cancel (default 0): each answer but a cancel ends it.
    retries: Option<u32>,
}

#[tool_router(router = ask_tool_router, vis = "pub(crate)")]
impl TaskServer {
    #[tool(description = "Order a pizza: asks the user how it should be.")]
    async fn order_pizza(
        &self,
        Parameters(args): Parameters<OrderArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let sub = caller(&ctx).ok();
        let mut answer = ctx.peer.create_elicitation(order_form()).await;
        for _ in 0..args.retries.unwrap_or(0).min(5) {
            match &answer {
                Ok(result) if result.action == ElicitationAction::Cancel => {
                    answer = ctx.peer.create_elicitation(order_form()).await;
                }
                _ => break,
            }
        }
        let text = match answer {
            Ok(result) => match result.action {
                ElicitationAction::Accept => {
                    json!({"action": "accept", "content": result.content}).to_string()
                }
                ElicitationAction::Decline => json!({"action": "decline"}).to_string(),
                _ => json!({"action": "cancel"}).to_string(),
            },
            Err(error) => {
                let error = error.to_string();
                self.log
                    .tool_call("order_pizza", json!({}), sub.as_deref(), Some(&error));
                return CallToolResult::error(vec![ContentBlock::text(error)]);
            }
        };
        self.log
            .tool_call("order_pizza", json!({"answer": text}), sub.as_deref(), None);
        CallToolResult::success(vec![ContentBlock::text(text)])
    }
}
