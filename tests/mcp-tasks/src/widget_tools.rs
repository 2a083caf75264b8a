//! The widget tools of the `tasks` server (endpoint `/mcp`): a second
//! `#[tool_router]` on [`TaskServer`], merged into its router. They answer
//! like the other tools (the caller from the transport, one text block, one
//! log line per call) and add ChatKit's interface-only `_meta` (`widgets`).

use std::time::Duration;

use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, ProgressNotificationParam};
use rmcp::schemars::JsonSchema;
use rmcp::service::RequestContext;
use rmcp::{tool, tool_router, RoleServer};
use serde::Deserialize;
use serde_json::json;

use crate::store::ToolError;
use crate::tools::{caller, TaskIdArgs, TaskServer};
use crate::widgets::{self, meta, CLIENT_EFFECT, COPY_TEXT, NOTICE, WIDGET};

/// Words of a report when the caller does not say.
const DEFAULT_REPORT_STEPS: i64 = 5;
/// Most words a report may have.
const MAX_REPORT_STEPS: i64 = 50;
/// Pause between two steps of a report.
const REPORT_STEP: Duration = Duration::from_millis(100);

#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct DraftReportArgs {
    /// What the report is about.
    topic: String,
    /// Number of words to write (1 to 50, default 5); about 100 ms each.
    steps: Option<i64>,
}

#[tool_router(router = widget_tool_router, vis = "pub(crate)")]
impl TaskServer {
    #[tool(description = "Show one task as a card.")]
    async fn show_task(
        &self,
        Parameters(args): Parameters<TaskIdArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let logged = json!({"task_id": args.task_id});
        self.run_then(
            "show_task",
            logged,
            &ctx,
            |tasks| tasks.get(&args.task_id),
            |task, result| {
                result.with_meta(Some(meta([
                    (WIDGET, widgets::task_card(task)),
                    (COPY_TEXT, json!(task.title)),
                ])))
            },
        )
    }

    #[tool(description = "Mark a task as done and show its updated card.")]
    async fn complete_task_card(
        &self,
        Parameters(args): Parameters<TaskIdArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let logged = json!({"task_id": args.task_id});
        self.run_then(
            "complete_task_card",
            logged,
            &ctx,
            |tasks| tasks.complete(&args.task_id),
            |task, result| result.with_meta(Some(meta([(WIDGET, widgets::task_card(task))]))),
        )
    }

    #[tool(description = "Delete a task and replace its card.")]
    async fn delete_task_card(
        &self,
        Parameters(args): Parameters<TaskIdArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let logged = json!({"task_id": args.task_id});
        let card = widgets::deleted_card(&args.task_id);
        self.run_then(
            "delete_task_card",
            logged,
            &ctx,
            |tasks| {
                tasks.delete(&args.task_id)?;
                Ok(json!({"deleted": true, "id": args.task_id}))
            },
            |_, result| result.with_meta(Some(meta([(WIDGET, card)]))),
        )
    }

    /// With a progress token, one progress notification per step (and one for
    /// the final state), each with the card so far in `_meta`.
    #[tool(
        description = "Draft a short report on a topic, one word per step (about 100 ms each), streaming its card."
    )]
    async fn draft_report(
        &self,
        Parameters(args): Parameters<DraftReportArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        const TOOL: &str = "draft_report";
        let logged = json!({"topic": args.topic, "steps": args.steps});
        let sub = match caller(&ctx) {
            Ok(sub) => sub,
            Err(error) => return self.fail(TOOL, logged, None, &error),
        };
        let steps = args
            .steps
            .unwrap_or(DEFAULT_REPORT_STEPS)
            .clamp(1, MAX_REPORT_STEPS) as usize;
        let token = ctx.meta.get_progress_token();
        let last = widgets::report_card(&args.topic, steps, true);
        // States 0..steps-1 stream the words; state `steps` is the final card.
        for k in 0..=steps {
            if k > 0 {
                tokio::select! {
                    () = ctx.ct.cancelled() => {
                        let error = ToolError("cancelled".into());
                        return self.fail(TOOL, logged, Some(&sub), &error);
                    }
                    () = tokio::time::sleep(REPORT_STEP) => {}
                }
            }
            let Some(token) = &token else { continue };
            let state = if k < steps {
                widgets::report_card(&args.topic, k + 1, false)
            } else {
                last.clone()
            };
            let mut progress = ProgressNotificationParam::new(token.clone(), (k + 1) as f64)
                .with_total((steps + 1) as f64);
            progress.meta = Some(widgets::progress_meta(state));
            // A client that went away misses the rest; the result still comes.
            let _ = ctx.peer.notify_progress(progress).await;
        }
        self.log.tool_call(TOOL, logged, Some(&sub), None);
        let text = json!({"topic": args.topic, "words": steps}).to_string();
        CallToolResult::success(vec![ContentBlock::text(text)])
            .with_meta(Some(meta([(WIDGET, last)])))
    }

    #[tool(description = "Highlight a task in the user's interface.")]
    async fn highlight_task(
        &self,
        Parameters(args): Parameters<TaskIdArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let logged = json!({"task_id": args.task_id});
        let effect = widgets::highlight_effect(&args.task_id);
        self.run_then(
            "highlight_task",
            logged,
            &ctx,
            |_| Ok(json!({"highlighted": args.task_id})),
            |_, result| {
                result.with_meta(Some(meta([
                    (CLIENT_EFFECT, effect),
                    (NOTICE, widgets::highlight_notice()),
                ])))
            },
        )
    }

    #[tool(description = "Return a widget that is invalid on purpose (for tests).")]
    async fn bad_widget(&self, ctx: RequestContext<RoleServer>) -> CallToolResult {
        self.run_then(
            "bad_widget",
            json!({}),
            &ctx,
            |_| Ok(json!({"ok": true})),
            |_, result| result.with_meta(Some(meta([(WIDGET, widgets::bad_widget())]))),
        )
    }
}
