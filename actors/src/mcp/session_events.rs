//! What a session's server tells it: its tool list changed, a call's progress, and
//! elicitation requests (`elicitation.rs`); and what the session declares at initialize.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rmcp::model::ProgressNotificationParam;
use rmcp::service::{MaybeSendFuture, NotificationContext, RoleClient};
use rmcp::ClientHandler;

use super::elicitation::{self, QuestionRoute};
use super::progress::ProgressRoutes;

#[derive(Clone, Default)]
pub(super) struct SessionEvents {
    pub tools_changed: Arc<AtomicBool>,
    pub progress: ProgressRoutes,
    pub questions: QuestionRoute,
}

impl ClientHandler for SessionEvents {
    fn get_info(&self) -> rmcp::model::ClientConfig {
        elicitation::client_config()
    }

    async fn create_elicitation(
        &self,
        request: rmcp::model::ElicitRequestParams,
        _context: rmcp::service::RequestContext<RoleClient>,
    ) -> Result<rmcp::model::ElicitResult, rmcp::ErrorData> {
        Ok(elicitation::answer_request(&self.questions, request).await)
    }

    fn on_tool_list_changed(
        &self,
        _context: NotificationContext<RoleClient>,
    ) -> impl std::future::Future<Output = ()> + MaybeSendFuture + '_ {
        self.tools_changed.store(true, Ordering::Release);
        std::future::ready(())
    }

    fn on_progress(
        &self,
        mut params: ProgressNotificationParam,
        context: NotificationContext<RoleClient>,
    ) -> impl std::future::Future<Output = ()> + MaybeSendFuture + '_ {
        // rmcp 3.11 moves a notification's `_meta` into the context's extensions before
        // decoding the params, so `params.meta` arrives empty.
        if params.meta.is_none() {
            params.meta = context
                .extensions
                .get::<rmcp::model::NotificationMetaObject>()
                .cloned();
        }
        if let Some(meta) = params.meta {
            self.progress.deliver(params.progress_token, meta.0 .0);
        }
        std::future::ready(())
    }
}
