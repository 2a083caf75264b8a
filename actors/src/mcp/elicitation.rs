//! MCP elicitation (`elicitation/create`, form mode): a tool asks the user during its call.
//! Each session declares the capability; a request goes to the turn whose tool calls run
//! (`QuestionRoute`), which asks it as a `structured_input` item; with nobody to ask (no call
//! running) it is declined. While a question waits, tool-call timeouts stand still.
//!
//! The form a request asks, and the answers it gets back: `form.rs`.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot};

/// What a tool asks: the question text and its requested schema.
pub struct Elicitation {
    pub message: String,
    pub schema: Value,
    pub reply: oneshot::Sender<ElicitAnswer>,
}

/// The user's answer, as MCP's `ElicitResult` says it.
#[derive(Clone, Debug, PartialEq)]
pub enum ElicitAnswer {
    Accept(Map<String, Value>),
    Decline,
    Cancel,
}

#[derive(Default)]
struct RouteState {
    to: Option<mpsc::Sender<Elicitation>>,
    /// Questions waiting now, and since when the first did.
    waiting: usize,
    since: Option<Instant>,
    /// Time spent waiting for the user so far (finished waits).
    waited: Duration,
}

/// Where a session's elicitation requests go (shared by the sessions of a thread actor).
#[derive(Clone, Default)]
pub struct QuestionRoute(Arc<Mutex<RouteState>>);

/// Clears the route when the calls that asked for it end.
pub struct RouteGuard(QuestionRoute);

impl Drop for RouteGuard {
    fn drop(&mut self) {
        self.0.lock().to = None;
    }
}

impl QuestionRoute {
    fn lock(&self) -> std::sync::MutexGuard<'_, RouteState> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends elicitation requests to `to` until the guard is dropped.
    pub fn route(&self, to: mpsc::Sender<Elicitation>) -> RouteGuard {
        self.lock().to = Some(to);
        RouteGuard(self.clone())
    }

    /// Asks the user through the routed turn; declined when no turn listens.
    pub async fn ask(&self, message: String, schema: Value) -> ElicitAnswer {
        let Some(to) = self.lock().to.clone() else {
            return ElicitAnswer::Decline;
        };
        let (reply, answer) = oneshot::channel();
        self.started_waiting();
        let sent = to.send(Elicitation {
            message,
            schema,
            reply,
        });
        let answer = match sent.await {
            Ok(()) => answer.await.unwrap_or(ElicitAnswer::Cancel),
            Err(_) => ElicitAnswer::Decline,
        };
        self.stopped_waiting();
        answer
    }

    fn started_waiting(&self) {
        let mut state = self.lock();
        state.waiting += 1;
        state.since.get_or_insert_with(Instant::now);
    }

    fn stopped_waiting(&self) {
        let mut state = self.lock();
        state.waiting = state.waiting.saturating_sub(1);
        if state.waiting == 0 {
            if let Some(since) = state.since.take() {
                state.waited += since.elapsed();
            }
        }
    }

    /// Time spent waiting for the user, the current wait included.
    fn waited(&self) -> Duration {
        let state = self.lock();
        state.waited + state.since.map_or(Duration::ZERO, |s| s.elapsed())
    }

    /// `work` within `limit`, not counting the time spent waiting for the user meanwhile.
    pub async fn within<F: Future>(&self, limit: Duration, work: F) -> Result<F::Output, ()> {
        tokio::pin!(work);
        let started = Instant::now();
        let waited_before = self.waited();
        loop {
            let paused = self.waited().saturating_sub(waited_before);
            let deadline = started + limit + paused;
            tokio::select! {
                out = &mut work => return Ok(out),
                _ = tokio::time::sleep_until(deadline.into()) => {
                    let paused = self.waited().saturating_sub(waited_before);
                    if started.elapsed() >= limit + paused {
                        return Err(());
                    }
                }
            }
        }
    }
}

/// What this client tells servers at initialize: it answers form elicitations.
pub(super) fn client_config() -> rmcp::model::ClientConfig {
    let mut capabilities = rmcp::model::ClientCapabilities::default();
    capabilities.elicitation = Some(
        rmcp::model::ElicitationCapability::new()
            .with_form(rmcp::model::FormElicitationCapability::new()),
    );
    let mut config = rmcp::model::ClientConfig::default();
    config.capabilities = capabilities;
    config
}

/// A server's `elicitation/create`: form mode asked through the route, URL mode declined.
pub(super) async fn answer_request(
    route: &QuestionRoute,
    request: rmcp::model::ElicitRequestParams,
) -> rmcp::model::ElicitResult {
    use rmcp::model::{ElicitRequestParams, ElicitResult, ElicitationAction};
    let answer = match request {
        ElicitRequestParams::FormElicitationParams {
            message,
            requested_schema,
            ..
        } => {
            let schema = serde_json::to_value(&requested_schema).unwrap_or(Value::Null);
            route.ask(message, schema).await
        }
        _ => ElicitAnswer::Decline,
    };
    match answer {
        ElicitAnswer::Accept(content) => {
            ElicitResult::new(ElicitationAction::Accept).with_content(Value::Object(content))
        }
        ElicitAnswer::Decline => ElicitResult::new(ElicitationAction::Decline),
        ElicitAnswer::Cancel => ElicitResult::new(ElicitationAction::Cancel),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tool_timeouts_stand_still_while_the_user_is_asked() {
        let ms = Duration::from_millis;
        let route = QuestionRoute::default();
        route.started_waiting();
        let waiting = route.clone();
        tokio::spawn(async move {
            tokio::time::sleep(ms(300)).await;
            waiting.stopped_waiting();
        });
        // 350 ms of work within 100 ms: 300 of them spent waiting for the user.
        assert_eq!(
            route.within(ms(100), tokio::time::sleep(ms(350))).await,
            Ok(())
        );
        assert_eq!(
            route.within(ms(100), tokio::time::sleep(ms(200))).await,
            Err(())
        );
    }
}
